package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// staticReply is a compact HTTP tracker reply listing peers (IPv4 only, as
// every peer of the benchmark is on 127.0.0.1). The short interval makes a
// client ask again soon if a peer was not reachable at first.
func staticReply(peers []netip.AddrPort) ([]byte, error) {
	var compact []byte
	for _, p := range peers {
		a := p.Addr().Unmap()
		if !a.Is4() {
			return nil, fmt.Errorf("tracker: peer %v is not IPv4", p)
		}
		b := a.As4()
		compact = binary.BigEndian.AppendUint16(append(compact, b[:]...), p.Port())
	}
	return fmt.Appendf(nil, "d8:intervali5e12:min intervali1e5:peers%d:%se", len(compact), compact), nil
}

// serveTracker answers every request on 127.0.0.1 with reply until ctx
// ends, and returns the announce URL and a function that waits for the
// server to stop. It is how aria2c, which cannot be told to dial a peer,
// learns the swarm.
func serveTracker(ctx context.Context, reply []byte) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("tracker: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(reply)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A failure shows as clients that never find their peers, which
		// the benchmark reports as a timeout naming them.
		_ = srv.Serve(ln)
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return "http://" + ln.Addr().String() + "/announce", func() { <-done }, nil
}
