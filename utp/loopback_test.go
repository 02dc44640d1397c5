package utp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"
)

// pair returns two Sockets on 127.0.0.1 and a connection between them.
func loopbackPair(t testing.TB, cfg Config) (client, server *Conn) {
	return loopbackPairOn(t, "udp4", "127.0.0.1:0", cfg)
}

// loopbackPairOn is loopbackPair on another network and address.
func loopbackPairOn(t testing.TB, network, addr string, cfg Config) (client, server *Conn) {
	t.Helper()
	a, err := Listen(network, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Listen(network, addr, cfg)
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
	client, server := loopbackPair(t, Config{})
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

// TestServeSharesSocket runs a Socket on a UDP socket it does not own,
// beside another protocol: KRPC datagrams reach the other handler, uTP
// connections work, and Serve ends when the owner closes the socket.
func TestServeSharesSocket(t *testing.T) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSocket(uc, Config{})
	krpc := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- Serve(uc, s, func(b []byte, _ netip.AddrPort) { krpc <- string(b) })
	}()

	other, err := net.Dial("udp4", uc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const query = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
	if _, err := other.Write([]byte(query)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-krpc:
		if got != query {
			t.Fatalf("the DHT handler got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the KRPC datagram never reached the other handler")
	}

	peer, err := Listen("udp4", "127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := peer.Dial(ctx, uc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.AcceptUTP()
	if err != nil {
		t.Fatal(err)
	}
	msg := randomBytes(300<<10, 8)
	go func() { c.Write(msg); c.Close() }()
	got, err := io.ReadAll(sc)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes over the shared socket, %v", len(got), err)
	}
	s.Close()
	uc.Close()
	if err := <-served; err != nil {
		t.Fatalf("Serve after the socket closed: %v", err)
	}
}

// TestLoopbackIPv6 connects over ::1.
func TestLoopbackIPv6(t *testing.T) {
	if ln, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	client, server := loopbackPairOn(t, "udp6", "[::1]:0", Config{})
	msg := randomBytes(1<<20, 11)
	go func() { client.Write(msg); client.Close() }()
	got, err := io.ReadAll(server)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes over ::1, %v", len(got), err)
	}
	if !client.RemoteAddrPort().Addr().Is6() {
		t.Fatalf("remote %v is not IPv6", client.RemoteAddrPort())
	}
}
