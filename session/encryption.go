package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/internal/rawsock"
	"github.com/sowerbt/sower/mse"
	"github.com/sowerbt/sower/peerwire"
)

// Encryption is the session's policy for Message Stream Encryption (MSE,
// see package mse) on peer connections. It applies to every transport:
// the functions here take a connection, or a function that dials one,
// and do not care how it was made.
//
// MSE hides BitTorrent from passive traffic inspection (an ISP's shaper
// looking for the plaintext handshake); it does not authenticate the peer
// and gives no secrecy against anyone who knows the torrent's info-hash,
// which every peer of the swarm and every tracker does.
type Encryption int32

const (
	// EncryptionPrefer, the default, dials encrypted first, offering RC4
	// and the obfuscated handshake with plaintext payload (the peer
	// chooses), and falls back once to a plaintext connection when the
	// peer closes or resets it; it accepts plaintext and MSE connections,
	// choosing the plaintext payload when the peer offers both (as
	// libtorrent does by default), so RC4 is spent only where a side
	// requires it.
	EncryptionPrefer Encryption = iota
	// EncryptionOff speaks plain BitTorrent only, in and out: incoming
	// MSE connections are closed.
	EncryptionOff
	// EncryptionRequire speaks MSE with an RC4 payload only, in and out:
	// plaintext and obfuscated-header-only connections are refused.
	EncryptionRequire
)

// String is the policy's name, as ParseEncryption reads it.
func (e Encryption) String() string {
	switch e {
	case EncryptionPrefer:
		return "prefer"
	case EncryptionOff:
		return "off"
	case EncryptionRequire:
		return "require"
	}
	return fmt.Sprintf("Encryption(%d)", int32(e))
}

// ParseEncryption reads a policy name: off, prefer or require.
func ParseEncryption(s string) (Encryption, error) {
	switch s {
	case "prefer":
		return EncryptionPrefer, nil
	case "off":
		return EncryptionOff, nil
	case "require":
		return EncryptionRequire, nil
	}
	return 0, fmt.Errorf("encryption %q: want off, prefer or require", s)
}

// methods are the MSE payload methods the policy offers and accepts.
func (e Encryption) methods() mse.Method {
	if e == EncryptionRequire {
		return mse.RC4
	}
	return mse.RC4 | mse.Plaintext
}

// Encryption is the session's current policy.
func (s *Session) Encryption() Encryption { return Encryption(s.enc.Load()) }

// SetEncryption changes the policy for connections made or accepted from
// now on; open connections keep theirs.
func (s *Session) SetEncryption(e Encryption) error {
	if e < EncryptionPrefer || e > EncryptionRequire {
		return fmt.Errorf("unknown encryption policy %d", int32(e))
	}
	s.enc.Store(int32(e))
	return nil
}

// refused reports whether a failed MSE handshake looks like a peer that
// does not speak it (or not what we offered): such peers close or reset
// the connection when our key arrives where a handshake should.
func refused(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// connect opens an outgoing connection to addr for the torrent ih as the
// policy says, with dial as the transport, and sends hs (our BitTorrent
// handshake) on it: as MSE's initial payload when encrypted, so the
// encryption costs no round trip.
func (s *Session) connect(ctx context.Context, dial func(context.Context) (net.Conn, error), addr netip.AddrPort, ih [20]byte, hs []byte, hint engine.PeerHint) (net.Conn, error) {
	pol := s.Encryption()
	switch {
	case pol == EncryptionOff:
		return connectPlain(ctx, dial, hs)
	case pol == EncryptionPrefer && hint.Plaintext && !hint.Encrypt:
		// It refused encryption last time: don't waste a round trip.
		return connectPlain(ctx, dial, hs)
	}
	conn, err := connectMSE(ctx, dial, ih, pol.methods(), hs)
	if err == nil || !refused(err) {
		return conn, err
	}
	if pol == EncryptionRequire {
		s.log.Info("peer refused an encrypted connection; not retrying in plaintext: encryption is required", "peer", addr, "err", err)
		return nil, err
	}
	s.log.Debug("peer refused an encrypted connection; retrying in plaintext", "peer", addr, "err", err)
	return connectPlain(ctx, dial, hs)
}

func connectPlain(ctx context.Context, dial func(context.Context) (net.Conn, error), hs []byte) (net.Conn, error) {
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		conn.SetWriteDeadline(d)
	}
	if _, err := conn.Write(hs); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send handshake: %w", err)
	}
	conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

func connectMSE(ctx context.Context, dial func(context.Context) (net.Conn, error), ih [20]byte, provide mse.Method, hs []byte) (net.Conn, error) {
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	c, err := mse.Initiate(ctx, conn, ih, provide, hs, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("encryption handshake: %w", err)
	}
	return c, nil
}

// accept runs the policy on an incoming connection, whose first bytes
// tell a plaintext handshake from an MSE one. It returns the connection
// that yields the peer's BitTorrent handshake and, for an MSE one, the
// info-hash the peer keyed it with (its handshake must name the same);
// or an error (the caller closes conn).
func (s *Session) accept(ctx context.Context, conn net.Conn, peer netip.AddrPort) (net.Conn, *[20]byte, error) {
	conn, plain, err := mse.Detect(conn)
	if err != nil {
		return nil, nil, fmt.Errorf("reading handshake: %w", err)
	}
	pol := s.Encryption()
	switch {
	case plain && pol == EncryptionRequire:
		s.log.Info("refusing a plaintext connection: encryption is required", "peer", peer)
		return nil, nil, errors.New("plaintext refused: encryption is required")
	case plain:
		return conn, nil, nil
	case pol == EncryptionOff:
		s.log.Debug("refusing an encrypted connection: encryption is off", "peer", peer)
		return nil, nil, errors.New("encrypted connection refused: encryption is off")
	}
	var skey [20]byte
	lookup := func(req2 [20]byte) ([20]byte, bool) {
		ih, ok := s.lookupReq2(req2)
		skey = ih
		return ih, ok
	}
	// Under "prefer" an obfuscated handshake with a plaintext payload is
	// enough when the peer allows it; RC4 only where a side requires it.
	c, err := mse.Accept(ctx, conn, lookup, pol.methods(), &mse.Options{PreferPlaintext: pol == EncryptionPrefer})
	if err != nil {
		if pol == EncryptionRequire {
			s.log.Info("encryption handshake failed; encryption is required", "peer", peer, "err", err)
		}
		return nil, nil, fmt.Errorf("encryption handshake: %w", err)
	}
	return c, &skey, nil
}

// lookupReq2 finds the info-hash of a swarm of the session from
// HASH("req2", info-hash), for mse.Accept.
func (s *Session) lookupReq2(req2 [20]byte) ([20]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ih, ok := s.req2[req2]
	return ih, ok
}

// connectTCP is engine.Config.Connect over TCP: the dial is the only part
// that knows the transport. The socket gets raw I/O (internal/rawsock)
// before the encryption wraps it.
func (s *Session) connectTCP(ctx context.Context, addr netip.AddrPort, hs []byte, hint engine.PeerHint) (net.Conn, error) {
	if len(hs) < peerwire.HandshakeLen {
		return nil, fmt.Errorf("handshake of %d bytes", len(hs))
	}
	ih := [20]byte(hs[28:48])
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr.String())
		if err != nil {
			return nil, err
		}
		return rawsock.Wrap(c), nil
	}
	return s.connect(ctx, dial, addr, ih, hs, hint)
}
