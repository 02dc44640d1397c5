// Package metadata fetches the info dictionary of a torrent from peers with
// the metadata extension of BEP 9, carried by the extension protocol of
// BEP 10. It is what turns a magnet link, which names only the info-hash,
// into a torrent Sower can download.
//
// Fetch does the networking. Assembler, ParseMsg and Msg.Append are the
// pure parts: the assembler collects 16 KiB pieces and checks them against
// the info-hash, and the message codec is shared with the engine, which
// serves metadata to other peers.
//
// Nothing a peer sends is trusted: sizes are bounded before anything is
// allocated, every piece must have exactly the length its index implies,
// and the assembled bytes are returned only if their SHA-1 is the
// info-hash.
package metadata
