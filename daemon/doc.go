// Package daemon runs many torrents in one long-lived process: it shares
// one peer port among them, queues them under limits on active downloads
// and seeds, stops seeds at ratio or time limits, applies global and
// per-torrent rate limits, and keeps its state in an embedded bbolt
// database so a restart resumes without re-hashing.
//
// # Fast resume
//
// For every running torrent the daemon checkpoints the engine's verified
// pieces every few seconds and on a clean stop. A checkpoint first syncs
// the torrent's files, then commits the piece set, so every piece in a
// committed checkpoint is durable. A record also says whether its
// checkpoint is exact (the torrent stopped cleanly after writing it). If
// not (SIGKILL, power loss), the next start trusts the checkpointed pieces
// and hashes only the others: nothing verified is lost, nothing unverified
// is trusted, and pieces written after the checkpoint are found again
// instead of downloaded twice.
//
// # Idle seeds cost almost nothing
//
// A seed with no peer connected is parked: after its check when no peer
// is waiting for it, or after Config.ParkAfter without peers. A parked
// torrent has no engine, no goroutine and no buffer, and its metainfo is
// dropped (it is reloaded from the state database when needed); it lists
// as seeding. The daemon itself, not each engine, announces torrents to
// their trackers, from one goroutine with a timer heap, so a parked seed
// stays announced and parking sends no "stopped". A peer's handshake for
// a parked torrent (through engine.Listener.SetWake), an announce that
// finds leechers, or AddPeers wakes it: its engine starts from the exact
// checkpoint written when it parked, without hashing, and takes the
// connection. After a wave of parking, and when a daemon with no engine
// running has piled up garbage (RPC replies), it returns the freed memory
// to the operating system at once, and it drops the pages of the state
// database's memory map that transactions brought into its resident set.
//
// # Magnets
//
// A torrent added by magnet link fetches its info dictionary from peers
// (BEP 9: the link's x.pe, AddPeers and its trackers) and then starts like
// one added from a file. Without peers the fetch waits on its peer channel
// and costs nothing; the status says it is waiting.
//
// # Control
//
// Handler serves the Transmission RPC protocol at /transmission/rpc (so
// transmission-remote and other Transmission tools drive Sower unchanged),
// Sower's own JSON API under /api/ for what Transmission cannot express
// (piece maps, peers with flags, availability), a web UI at /, and
// Prometheus metrics at /metrics.
package daemon
