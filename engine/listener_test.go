package engine

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sowerbt/sower/peerwire"
)

// Listener accepts peer connections on one port for the engines of a
// test, routing each by the info-hash in its handshake (the session
// package does this for real).
type Listener struct {
	ln  net.Listener
	log *slog.Logger

	mu       sync.Mutex // guards torrents
	torrents map[[20]byte]*torrentEntry
}

type torrentEntry struct {
	t   *Torrent
	ctx context.Context
}

// Listen opens a TCP listener on addr (e.g. "127.0.0.1:6881" or ":0").
func Listen(addr string, logger *slog.Logger) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{ln: ln, log: logger, torrents: make(map[[20]byte]*torrentEntry)}, nil
}

// Port is the port actually listened on.
func (l *Listener) Port() uint16 { return uint16(l.ln.Addr().(*net.TCPAddr).Port) }

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting connections (Serve also closes the listener when
// its context ends).
func (l *Listener) Close() error { return l.ln.Close() }

// Add routes connections for t's info-hash to t until ctx ends.
func (l *Listener) Add(ctx context.Context, t *Torrent) {
	l.mu.Lock()
	l.torrents[t.infoHash] = &torrentEntry{t: t, ctx: ctx}
	l.mu.Unlock()
}

// Remove stops routing connections for the info-hash.
func (l *Listener) Remove(infoHash [20]byte) {
	l.mu.Lock()
	delete(l.torrents, infoHash)
	l.mu.Unlock()
}

// Serve accepts connections until ctx is cancelled, then closes the
// listener and waits for handshakes in progress.
func (l *Listener) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.ln.Close() })
	defer stop()
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.route(ctx, conn)
		}()
	}
}

func (l *Listener) route(ctx context.Context, conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	reserved, ih, err := peerwire.ReadHandshakeStart(conn)
	if err != nil {
		l.log.Debug("incoming handshake", "peer", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	l.mu.Lock()
	e := l.torrents[ih]
	l.mu.Unlock()
	if e == nil {
		l.log.Debug("incoming connection for unknown torrent", "peer", conn.RemoteAddr(), "infohash", ih)
		conn.Close()
		return
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.ctx, cancel)
	defer stop()
	e.t.AcceptIncoming(tctx, conn, reserved)
}
