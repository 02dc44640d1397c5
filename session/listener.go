package session

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/internal/rawsock"
	"github.com/sowerbt/sower/peerwire"
)

// handshakeTimeout bounds the time an incoming connection may take to
// send the start of its handshake.
const handshakeTimeout = 20 * time.Second

// serve accepts peer connections until the session closes. An accept
// error (out of file descriptors, say) is not fatal: it is logged and
// accepting resumes after a back-off, so a burst of connections cannot
// end the process nor deafen it for good.
func (s *Session) serve() {
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := 5 * time.Millisecond
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("accepting peer connections", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		select {
		case s.halfOpen <- struct{}{}:
		default:
			// Too many handshakes in progress: refuse before they cost
			// more than the socket.
			conn.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-s.halfOpen }()
			s.route(conn)
		})
	}
}

// route reads the start of an incoming handshake and hands the connection
// to the engine of the swarm it names, waking one if the swarm has none.
func (s *Session) route(conn net.Conn) {
	ap, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !s.gate.Admit(ap) {
		s.log.Debug("refusing peer: connection limit", "peer", ap)
		conn.Close()
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			s.gate.Release(ap)
		}
	}()
	stop := context.AfterFunc(s.ctx, func() { conn.Close() })
	defer stop()
	conn.SetReadDeadline(time.Now().Add(handshakeTimeout))
	// Raw socket I/O (internal/rawsock) must sit beneath the encryption,
	// so the wrap comes first.
	raw := rawsock.Wrap(conn)
	conn, skey, err := s.accept(s.ctx, raw, ap)
	if err != nil {
		s.log.Debug("incoming connection", "peer", ap, "err", err)
		raw.Close()
		return
	}
	conn.SetReadDeadline(time.Now().Add(handshakeTimeout))
	reserved, ih, err := peerwire.ReadHandshakeStart(conn)
	if err != nil {
		s.log.Debug("incoming handshake", "peer", ap, "err", err)
		conn.Close()
		return
	}
	if skey != nil && *skey != ih {
		s.log.Debug("incoming handshake names another torrent than its encryption key", "peer", ap, "infohash", ih)
		conn.Close()
		return
	}
	w := s.swarm(ih)
	if w == nil {
		s.log.Debug("incoming connection for unknown torrent", "peer", ap, "infohash", ih)
		conn.Close()
		return
	}
	e, ctx := w.engineForIncoming()
	if e == nil {
		conn.Close()
		return
	}
	if !stop() {
		conn.Close() // the session is closing
		return
	}
	handedOff = true
	e.AcceptIncoming(ctx, engine.Gated(conn, s.gate, ap), reserved)
}
