//go:build linux

package trackerserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/rawsock"
	"golang.org/x/sys/unix"
)

// TestAnnouncePathLargeAnswer: through the raw writer, an answer larger than the socket's send
// buffer, to a client that is slow to read, arrives whole (the writer waits
// for room and goes on where it stopped), and the connection stays usable.
func TestAnnouncePathLargeAnswer(t *testing.T) {
	rt := start(t, Config{FullScrape: true}, "4")
	const torrents = 20_000
	ip := netip.MustParseAddr("127.0.0.1")
	var out peerList
	for i := range torrents {
		p := announceParams{infoHash: id(fmt.Sprint("large-", i)), peerID: id("large-peer"), port: 7, left: 1, numWant: -1}
		if _, _, err := rt.srv.announce(&p, ip, nil, wantV4, rt.srv.clock(), &out); err != nil {
			t.Fatal(err)
		}
	}
	// A small receive buffer on the client keeps the tracker's writes
	// partial.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", strings.TrimPrefix(rt.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /scrape HTTP/1.1\r\nHost: t\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // let the tracker fill the socket buffers and wait
	resp, body := readResp(t, br)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "d5:filesd") || !strings.HasSuffix(body, "ee") {
		t.Fatalf("full scrape: %d, %d bytes: %.60q", resp.StatusCode, len(body), body)
	}
	if n := strings.Count(body, "10:incompletei1e"); n != torrents {
		t.Fatalf("full scrape of %d bytes names %d torrents, want %d", len(body), n, torrents)
	}
	io.WriteString(c, "GET /scrape?info_hash="+goodHash+" HTTP/1.1\r\nHost: t\r\n\r\n")
	if resp, body = readResp(t, br); resp.StatusCode != 200 || !strings.HasPrefix(body, "d5:files") {
		t.Fatalf("scrape after the large answer: %d %q", resp.StatusCode, body)
	}
}

// TestRawConnIO drives the raw reader and writer on a TCP connection whose
// send buffer is small: a large write goes out in many partial writes,
// each waiting for room, and arrives whole; a read sees the peer's bytes,
// then io.EOF when it closes; a read deadline in the past stops a read.
func TestRawConnIO(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no tcp4 loopback: %v", err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	cs := &connState{c: rawsock.Wrap(c)}
	if cs.c == c {
		t.Fatal("rawsock.Wrap: a *net.TCPConn was not wrapped on Linux")
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	peer.SetDeadline(time.Now().Add(10 * time.Second))

	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // the writer fills the buffers first
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	if _, err := cs.c.Write(big); err != nil {
		t.Fatalf("write: %v", err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer read %d bytes, not the %d written", len(b), len(big))
	}

	io.WriteString(peer, "hello")
	buf := make([]byte, 64)
	if n, err := cs.c.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read: %q, %v", buf[:n], err)
	}
	c.SetReadDeadline(time.Unix(1, 0))
	if _, err := cs.c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	peer.Close()
	if n, err := cs.c.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v; want io.EOF", n, err)
	}
}
