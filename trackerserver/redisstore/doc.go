// Package redisstore keeps a tracker's swarms in Redis or Valkey (a single
// server or a Redis Cluster), so that several `sower tracker` instances
// behind any load balancer share them: a peer announced to one instance is
// handed out by every other, scrapes agree, and a download is counted once.
//
// # Keys
//
// A swarm's keys share a Cluster hash tag, the info-hash in hex, so they
// live in one slot and one script may touch them all:
//
//	t:{HEX}:s4  t:{HEX}:l4   seeders and leechers, IPv4 (sorted sets)
//	t:{HEX}:s6  t:{HEX}:l6   the same for IPv6
//	t:{HEX}:d                completed downloads (a counter, kept forever)
//	t:{HEX}:u                private trackers: each peer's last reported
//	                         byte totals, to turn totals into increments
//
// A peer is a member of one sorted set: its address and port exactly as a
// compact reply carries them (6 bytes for IPv4, 18 for IPv6), scored by the
// unix time of its last announce. The peer's identity is that address, as
// in opentracker: no peer id is kept, so non-compact replies leave "peer
// id" out. Small sets are listpacks in Redis, about 15 bytes per peer.
//
// Users and passkeys of a private tracker share the tag {sower-users}:
// u:{sower-users}:k:PASSKEY holds the user's name, u:{sower-users}:n:NAME a
// hash of passkey, created, uploaded and downloaded, u:{sower-users}:names
// the set of names. The whitelist is the set w:{sower-wl}:all (the union of
// w:{sower-wl}:file, mirrored from a whitelist file, and w:{sower-wl}:added,
// uploaded torrents). c:{sower}:connid is the seed of the UDP connection-id
// secrets every instance shares.
//
// # One round trip per announce
//
// An announce is one EVALSHA of a Lua script on the swarm's slot. It
// removes up to a few expired peers of each set it reads (the oldest
// first: the sets are ordered by last announce, so no scan of the whole
// swarm or of the keyspace is ever needed), adds or moves the peer (or
// removes it on "stopped"), counts a completed download if the peer was
// not a seeder already, picks up to numwant peers at random with
// ZRANDMEMBER, seeders first for a leecher and only leechers for a seeder,
// skipping any not seen within the peer lifetime, and reads the counts
// with ZCOUNT over the lifetime. Every step costs O(log n + numwant)
// whatever the swarm's size. Each set's key expires a lifetime after its
// last announce, so an abandoned swarm goes away by itself.
//
// Concurrent announces share connections: the client library pipelines
// calls from many goroutines onto one connection per Redis node, so many
// announces travel in one write and one read.
//
// Passkey and whitelist look-ups are answered from the client library's
// server-assisted cache (RESP3 client tracking): Redis tells every
// instance when a cached key changes, so a revoked passkey is refused by
// all instances at once, and a look-up costs no round trip.
package redisstore
