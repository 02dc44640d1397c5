// Package bencode implements the bencoding of BEP 3, the serialization used
// by metainfo (.torrent) files, tracker responses, the DHT and extension
// messages.
//
// # Strictness
//
// BEP 3 gives every value exactly one valid encoding, and the package
// insists on it, because two parties that disagree about which bytes a
// value has will disagree about hashes computed over them. By default
// Unmarshal and Decoder reject, with a *SyntaxError naming the byte offset:
// integers with leading zeros ("i03e"), negative zero ("i-0e"), empty
// integers ("ie", "i-e"), integers outside int64, string lengths with
// leading zeros ("03:abc"), string lengths longer than the remaining input
// (checked before anything is allocated), dict keys that are not byte
// strings, duplicate dict keys, dict keys out of ascending raw-byte order,
// nesting deeper than DecodeOptions.MaxDepth, truncated input and trailing
// data after the value. No input makes the decoder panic, and memory use is
// bounded by the input size (times the size of the Go values it decodes to).
//
// Marshal produces only canonical encodings: dict keys, from maps and
// struct fields alike, are written in ascending raw-byte order.
//
// # Unsorted keys
//
// Some old torrent creators wrote dict keys out of order. Real files from
// them are otherwise fine, so metainfo parsing decodes with
// DecodeOptions{AllowUnsortedKeys: true}; duplicate keys are still
// rejected. Everything else (tracker responses, DHT and extension messages)
// uses the strict default. The info-hash is always computed over the raw
// bytes of the info dict as they appear in the file, captured with a
// RawMessage, never over a re-encoding: re-encoding would sort the keys and
// change the hash of such a file.
//
// # Streams
//
// A Decoder reads values one at a time from an io.Reader such as a network
// connection. It reads only a bounded amount past each value, and refuses
// values larger than Decoder.MaxValueSize (16 MiB by default) before
// buffering them, so a peer cannot make it hold unbounded memory.
//
// # Concurrency
//
// All functions are safe for concurrent use. The package keeps one piece of
// global state, a cache of per-type reflection data (struct fields and
// compiled encoders and decoders), which is safe for concurrent use and
// never holds data from the values being processed. A Decoder or Encoder
// must not be used by several goroutines at once.
package bencode
