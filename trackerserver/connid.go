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
	// seed, when set, derives each epoch's secret instead of drawing it,
	// so that every tracker holding the same seed issues and accepts the
	// same ids (trackers on one shared store). It may be replaced (see
	// setSeed).
	seed atomic.Pointer[[32]byte]
}

type connSecrets struct {
	epoch     int64
	seed      *[32]byte // the seed they derive from, nil if drawn
	cur, prev [32]byte
}

// newSharedConnIDs returns connection ids derived from seed.
func newSharedConnIDs(seed [32]byte) *connIDs {
	c := &connIDs{}
	c.seed.Store(&seed)
	c.cur.Store(&connSecrets{epoch: -1})
	return c
}

// setSeed replaces the seed of shared connection ids (when the store lost
// it and another tracker's was adopted); ids issued under the old seed
// stop working.
func (c *connIDs) setSeed(seed [32]byte) {
	if old := c.seed.Load(); old != nil && *old != seed {
		c.seed.Store(&seed)
	}
}

// derive returns the secret of an epoch under a seed: SHA-256 of the
// seed and the epoch number, so that one epoch's secret tells nothing of
// another's.
func derive(seed *[32]byte, epoch int64) [32]byte {
	var msg [32 + 8]byte
	copy(msg[:32], seed[:])
	binary.BigEndian.PutUint64(msg[32:], uint64(epoch))
	return sha256.Sum256(msg[:])
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
	seed := c.seed.Load()
	s := c.cur.Load()
	if s.epoch == epoch && s.seed == seed {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s = c.cur.Load(); s.epoch == epoch && s.seed == seed {
		return s
	}
	n := &connSecrets{epoch: epoch, seed: seed}
	if seed != nil {
		n.cur, n.prev = derive(seed, epoch), derive(seed, epoch-1)
		c.cur.Store(n)
		return n
	}
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
