package peerwire

import (
	"crypto/sha1"
	"encoding/binary"
	"math"
	"net"

	"github.com/sowerbt/sower/bitfield"
)

// AllowedFastSet computes the BEP 6 allowed fast set of k pieces for the
// peer at ip: the pieces that peer may download from us while choked. The
// set depends only on the peer's network, the torrent and k, so a peer
// reconnecting from a neighbouring address gets the same pieces and gains
// nothing, and the first k of a larger set equal the smaller set.
//
// For IPv4 the address is masked to its /24 as the BEP says. BEP 6 has no
// provision for IPv6; since only the sender computes the set, any
// deterministic choice interoperates, and this one masks IPv6 addresses
// to their /64 (the smallest network a subscriber normally gets) and
// hashes the 16 masked bytes. k is capped at numPieces, and numPieces at 2^32-1 since indices are
// 32-bit. It returns nil if
// ip is not a valid address, numPieces < 1 or k < 1.
func AllowedFastSet(ip net.IP, infoHash [20]byte, numPieces, k int) []uint32 {
	if numPieces < 1 || k < 1 {
		return nil
	}
	numPieces = min(numPieces, math.MaxUint32) // piece indices are 32-bit
	k = min(k, numPieces)
	var x []byte
	if v4 := ip.To4(); v4 != nil {
		x = append(x, v4[0], v4[1], v4[2], 0)
	} else if v6 := ip.To16(); v6 != nil {
		x = append(x, v6[:8]...)
		x = append(x, make([]byte, 8)...)
	} else {
		return nil
	}
	x = append(x, infoHash[:]...)

	set := make([]uint32, 0, k)
	seen := bitfield.New(numPieces)
	for len(set) < k {
		h := sha1.Sum(x)
		x = h[:]
		for i := 0; i < 5 && len(set) < k; i++ {
			index := binary.BigEndian.Uint32(h[i*4:]) % uint32(numPieces)
			if !seen.Has(int(index)) {
				seen.Set(int(index))
				set = append(set, index)
			}
		}
	}
	return set
}
