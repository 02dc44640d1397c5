package trackerserver

import (
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// closedWithin reports whether the server closes c (a read ends in EOF or
// a reset) before wait passes.
func closedWithin(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.ReadAll(c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestHeadDeadlineCoversWholeHead drips a request head one byte at a time,
// each byte well within the head time-out: the deadline runs from the
// head's start, so the server closes the connection anyway (it used to be
// pushed back by every byte, holding the connection as long as bytes came).
func TestHeadDeadlineCoversWholeHead(t *testing.T) {
	rt := start(t, Config{HeaderTimeout: Duration(400 * time.Millisecond)}, "4")
	c, _ := rawConn(t, rt)
	closed := make(chan struct{})
	go func() {
		closedWithin(c, 10*time.Second)
		close(closed)
	}()
	head := "GET /announce?info_hash=" + goodHash + "&peer_id=" + goodPeer + "&port=9 HTTP/1.1\r\n"
	for i := range len(head) {
		select {
		case <-closed:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if i > 40 { // 4 s of bytes, ten times the head time-out
			t.Fatal("a head dripped byte by byte is still being read after 10 head time-outs")
		}
		c.Write([]byte{head[i]})
	}
	t.Fatal("whole head sent without the connection being closed")
}

// TestSilentConnectionClosed opens a connection that never sends: it is
// closed once the head time-out passes (it used to wait the 60 s idle
// time-out of a keep-alive connection).
func TestSilentConnectionClosed(t *testing.T) {
	rt := start(t, Config{HeaderTimeout: Duration(300 * time.Millisecond)}, "4")
	c, _ := rawConn(t, rt)
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("silent connection still open 5 s after connecting, head time-out 300 ms")
	}
}

// TestConnCapEvictsOldestIdle fills the connection cap with idle
// connections, on net/http's path and the announce path, and checks that
// new clients are served by closing the longest-idle ones first, as
// /metrics counts.
func TestConnCapEvictsOldestIdle(t *testing.T) {
	rt := start(t, Config{MaxConns: 3}, "4")
	ann := "GET /announce?info_hash=" + goodHash + "&peer_id=" + goodPeer + "&port=9 HTTP/1.1\r\nHost: t\r\n\r\n"
	c1, br1 := rawConn(t, rt) // idle keep-alive on net/http's path
	io.WriteString(c1, "GET /upload HTTP/1.1\r\nHost: t\r\n\r\n")
	readResp(t, br1)
	waitIdle(t, rt.srv, 1)
	c2, _ := rawConn(t, rt) // silent
	waitIdle(t, rt.srv, 2)
	c3, br3 := rawConn(t, rt) // idle keep-alive on the announce path
	io.WriteString(c3, ann)
	readResp(t, br3)
	waitIdle(t, rt.srv, 3)

	for i, old := range []net.Conn{c1, c2} {
		c, br := rawConn(t, rt)
		io.WriteString(c, ann)
		if resp, body := readResp(t, br); resp.StatusCode != 200 || !strings.HasPrefix(body, "d8:complete") {
			t.Fatalf("announce at the cap: %d %q", resp.StatusCode, body)
		}
		if !closedWithin(old, 5*time.Second) {
			t.Fatalf("new connection %d: connection %d (the longest idle) still open", i+1, i+1)
		}
		if closedWithin(c3, 100*time.Millisecond) {
			t.Fatalf("new connection %d: connection 3 closed before older ones", i+1)
		}
		waitIdle(t, rt.srv, 3) // the new one stays open
	}
	m := get(t, rt.base+"/metrics")
	// The /metrics request may itself evict a connection.
	ev := regexp.MustCompile(`(?m)^sower_tracker_http_connections_evicted_total ([0-9]+)$`).FindStringSubmatch(m)
	if ev == nil || ev[1] < "2" {
		t.Errorf("/metrics: evicted %v, want at least 2", ev)
	}
	for _, want := range []string{"sower_tracker_http_connections_max 3\n", "sower_tracker_http_connections ", "sower_tracker_http_connections_refused_total 0\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// waitIdle waits until s holds n idle HTTP connections, so that the
// order in which they became idle is the test's.
func waitIdle(t *testing.T, s *Server, n int) {
	t.Helper()
	idle := func() int {
		s.conns.mu.Lock()
		defer s.conns.mu.Unlock()
		k := 0
		for e := s.conns.head; e != nil; e = e.next {
			k++
		}
		return k
	}
	for deadline := time.Now().Add(5 * time.Second); idle() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections, want %d", idle(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConnLimit(t *testing.T) {
	l := newConnLimit(2)
	a1, a2 := fakeConn(), fakeConn()
	e1, e2 := l.admit(a1), l.admit(a2)
	if !l.busy(e1) || !l.busy(e2) {
		t.Fatal("busy on a fresh connection failed")
	}
	if e := l.admit(fakeConn()); e != nil || l.refused.Load() != 1 {
		t.Fatal("admitted a connection with every open one busy")
	}
	l.idle(e2)
	l.idle(e1)
	e3 := l.admit(fakeConn())
	if e3 == nil || !e2.gone || e1.gone || l.count() != 2 {
		t.Fatalf("at the cap: admitted %v, e1 gone %v, e2 gone %v, open %d", e3 != nil, e1.gone, e2.gone, l.count())
	}
	if l.busy(e2) {
		t.Error("busy on an evicted connection succeeded")
	}
	l.release(e2) // already gone: no change
	l.release(e1)
	l.release(e1)
	if l.count() != 1 {
		t.Errorf("open = %d after releases, want 1", l.count())
	}
}

func fakeConn() net.Conn {
	c, _ := net.Pipe()
	return c
}
