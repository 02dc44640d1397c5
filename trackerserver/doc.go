// Package trackerserver is Sower's BitTorrent tracker: the HTTP announce and
// scrape protocol (BEP 3, 23, 7, 48), the UDP tracker protocol (BEP 15, 41),
// open, whitelist and private (passkey) access modes, an HTML index of the
// torrents it tracks with operator uploads, and Prometheus metrics.
//
// # Memory
//
// Peers live only in memory, as fixed-size records (34 bytes per IPv4 peer,
// 46 per IPv6 peer: peer id, the address and port in their compact wire
// form, last-announce time with the seeder flag, BEP 7 key) packed two to a
// chunk in pointer-free slabs that each shard reuses (growth copies and
// frees nothing; the slabs are kept at the shard's peak); swarms of more
// than a few dozen peers add a 4-byte-per-slot peer-id index. A torrent
// costs a 48-byte swarm, which holds the chunk handles of up to ten IPv4
// peers itself, and its entry in its shard's map; with those an IPv4 peer
// costs about 47 bytes of heap at ten peers per torrent. Memory is bounded by
// Config.MaxTorrents (torrents with at least one peer), Config.MaxPeersPerTorrent
// and Config.MaxPeers (all peers together): an announce that would exceed a
// cap is refused with a failure reason instead. Peers that stop announcing
// expire after Config.ExpireFactor intervals.
//
// # Shared store
//
// With Config.Store set (package redisstore: Redis or Valkey, standalone
// or Cluster), swarms, download counts, passkeys with their traffic and
// the whitelist live in that store instead, so that several trackers
// answer for the same swarms; see SharedStore. Each announce is then one
// round trip to the store, bounded by a one-second deadline that turns a
// store fault into a failure reason.
//
// # Persistence
//
// Everything that cannot be rebuilt from re-announces (passkeys and per-user
// byte counts, completed-download counts, uploaded .torrent files and their
// descriptions) is kept in a bbolt database in Config.DataDir. Counters are
// written in batches every Config.FlushInterval and at shutdown, so a crash
// (not a graceful stop) loses at most that much accounting.
//
// # Untrusted input
//
// Requests are parsed by hand with bounded sizes; a malformed request gets a
// bencoded "failure reason" (HTTP) or a BEP 15 error packet (UDP) naming the
// field at fault, and never a panic. UDP connection ids are a keyed hash of
// the client's address and a secret that rotates every minute, so they
// cannot be forged and the server keeps no per-client state for them.
package trackerserver
