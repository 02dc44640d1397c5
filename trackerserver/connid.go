package trackerserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// connIDEpoch is how long one secret is used to issue connection ids, in
// seconds. An id is accepted while its secret is current or previous, so
// it lives 1 to 2 epochs: at least the minute BEP 15 lets clients use it.
const connIDEpoch = 60

// connIDs issues and checks BEP 15 connection ids without storing any
// per-client state: an id is a MAC of the client's address under a
// secret that is replaced every epoch. The MAC is SHA-256 keyed by prefixing
// the secret to a fixed-length message; fixed length rules out length
// extension, and only 8 bytes of the digest are used.
type connIDs struct {
	mu  sync.Mutex // serialises rotation
	cur atomic.Pointer[connSecrets]
}

type connSecrets struct {
	epoch     int64
	cur, prev [32]byte
}

func newConnIDs() (*connIDs, error) {
	c := &connIDs{}
	var s connSecrets
	if _, err := rand.Read(s.cur[:]); err != nil {
		return nil, fmt.Errorf("connection id secret: %w", err)
	}
	s.prev = s.cur
	s.epoch = -1 // rotated on first use
	c.cur.Store(&s)
	return c, nil
}

// secrets returns the secrets of the epoch that contains unix time now.
func (c *connIDs) secrets(now int64) *connSecrets {
	epoch := now / connIDEpoch
	s := c.cur.Load()
	if s.epoch == epoch {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s = c.cur.Load(); s.epoch == epoch {
		return s
	}
	n := &connSecrets{epoch: epoch}
	rand.Read(n.cur[:])
	if s.epoch == epoch-1 {
		n.prev = s.cur
	} else {
		// After a pause of more than an epoch, ids from before it are
		// too old anyway.
		rand.Read(n.prev[:])
	}
	c.cur.Store(n)
	return n
}

// connMAC covers the address but not the port: clients (Sower's among
// them) may send later requests from another socket, and the address alone
// is what stops spoofed announces.
func connMAC(secret *[32]byte, from netip.AddrPort) uint64 {
	var msg [32 + 16]byte
	copy(msg[:32], secret[:])
	a := from.Addr().As16()
	copy(msg[32:48], a[:])
	sum := sha256.Sum256(msg[:])
	return binary.BigEndian.Uint64(sum[:8])
}

// issue returns a connection id for the client at from.
func (c *connIDs) issue(now int64, from netip.AddrPort) uint64 {
	return connMAC(&c.secrets(now).cur, from)
}

// valid reports whether id was issued to from within the last 1-2 epochs.
func (c *connIDs) valid(now int64, from netip.AddrPort, id uint64) bool {
	s := c.secrets(now)
	return connMAC(&s.cur, from) == id || connMAC(&s.prev, from) == id
}
