package utp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// pair returns two Sockets on 127.0.0.1 and a connection between them.
func loopbackPair(t testing.TB) (client, server *Conn) {
	t.Helper()
	a, err := Listen("udp4", "127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Listen("udp4", "127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := b.AcceptUTP()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err = a.Dial(ctx, b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case server = <-accepted:
	case <-ctx.Done():
		t.Fatal("no connection accepted")
	}
	return client, server
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestLoopbackTransfer sends data both ways over real UDP on 127.0.0.1.
func TestLoopbackTransfer(t *testing.T) {
	client, server := loopbackPair(t)
	up := randomBytes(8<<20, 1)
	down := randomBytes(1<<20, 2)
	errc := make(chan error, 2)
	go func() {
		_, err := client.Write(up)
		if err == nil {
			err = client.Close()
		}
		errc <- err
	}()
	go func() {
		_, err := server.Write(down)
		errc <- err
	}()
	got, err := io.ReadAll(server)
	if err != nil {
		t.Fatalf("server read: %v", err)
	}
	if !bytes.Equal(got, up) {
		t.Fatalf("server got %d bytes (sha %x), want %d (sha %x)", len(got), sha256.Sum256(got), len(up), sha256.Sum256(up))
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	st := client.Stats()
	t.Logf("client: packet size %d, window %d, rtt %v", st.PacketSize, st.Window, st.RTT)
	server.Close()
}
