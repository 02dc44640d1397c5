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
