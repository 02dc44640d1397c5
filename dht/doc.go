// Package dht implements the BitTorrent Mainline DHT (BEP 5), the
// distributed tracker that lets clients find peers without a tracker.
//
// A Node speaks KRPC over one UDP socket (IPv4 or IPv6, BEP 32): it answers
// ping, find_node, get_peers and announce_peer queries from other nodes, and
// runs iterative lookups (Alpha = 3 queries in flight, converging on the
// K = 8 closest nodes) for its owner through GetPeers and Announce.
//
// Everything a remote node can make us hold is bounded: incoming queries
// are rate limited per source IP, announced peers are capped in total and
// per torrent and expire, outstanding queries and verification pings are
// capped, and datagrams larger than a few kilobytes are dropped. Nodes
// enter the routing table only after answering one of our queries, so a
// spoofed source address cannot plant entries. Tokens for announce_peer are
// a hash of the asker's IP and a secret rotated every 5 minutes; tokens of
// the current and previous secret are accepted.
//
// The transport is any net.PacketConn (Config.Conn), so tests and
// simulations can run thousands of nodes in memory with the same code.
package dht
