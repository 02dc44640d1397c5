package tracker

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
)

// Sizes of one compact peer entry: address then big-endian port (BEP 23, 7).
const (
	compactV4 = 4 + 2
	compactV6 = 16 + 2
)

// parseCompactPeers decodes a packed list of address/port pairs with the
// given stride (compactV4 or compactV6), appending to dst. Entries that
// cannot be dialled (port 0, unspecified address) are skipped because
// handing them to the engine would only waste a connection attempt.
// field names the source in error messages.
func parseCompactPeers(dst []Peer, b []byte, stride int, field string, log *slog.Logger) ([]Peer, error) {
	if len(b)%stride != 0 {
		return dst, fmt.Errorf("%s: length %d is not a multiple of %d", field, len(b), stride)
	}
	for off := 0; off < len(b); off += stride {
		e := b[off : off+stride]
		var addr netip.Addr
		if stride == compactV4 {
			addr = netip.AddrFrom4([4]byte(e[:4]))
		} else {
			// IPv4-mapped entries are the same peers as IPv4 ones; unmapping
			// lets the engine deduplicate them.
			addr = netip.AddrFrom16([16]byte(e[:16])).Unmap()
		}
		port := binary.BigEndian.Uint16(e[stride-2:])
		if port == 0 || addr.IsUnspecified() {
			log.Debug("tracker: skipping undialable compact peer", "field", field, "offset", off, "addr", addr, "port", port)
			continue
		}
		dst = append(dst, Peer{Addr: netip.AddrPortFrom(addr, port)})
	}
	return dst, nil
}

// dedupePeers drops repeated addresses, keeping the first occurrence, so a
// peer listed in both "peers" and "peers6" (IPv4-mapped) or twice by a
// sloppy tracker costs one connection attempt, not two.
func dedupePeers(ps []Peer) []Peer {
	seen := make(map[netip.AddrPort]struct{}, len(ps))
	out := ps[:0]
	for _, p := range ps {
		if _, dup := seen[p.Addr]; dup {
			continue
		}
		seen[p.Addr] = struct{}{}
		out = append(out, p)
	}
	return out
}
