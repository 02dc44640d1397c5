// Package engine downloads and seeds one torrent over the peer wire
// protocol.
//
// Each Torrent has one owner goroutine (Run) that holds all swarm state:
// which pieces we have, which blocks are requested from whom, and every
// peer's flags. Each connection has a reader goroutine that decodes
// messages and hands them to the owner through a buffered channel, and a
// writer goroutine that drains a per-peer queue and reads uploaded blocks
// from storage itself, so disk reads and slow sockets never stall the
// owner. Completed pieces are hashed and written by a bounded pool of
// verification goroutines; a piece counts as ours only after its hash
// matched and its bytes were handed to storage, so a crash can lose
// unverified work but never a verified piece.
//
// Memory is bounded: a received block stays in the pooled 16 KiB buffer it
// was read into until its piece is hashed and written, and in-flight
// pieces share a fixed budget (Config.MaxBuffer); when hashing falls
// behind, no new pieces are started.
package engine
