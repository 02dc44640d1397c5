package trackerserver

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseHead(t *testing.T) {
	for _, tc := range []struct {
		head      string
		handOff   bool
		close     bool
		keepAlive bool
		realIP    string
	}{
		{head: "GET /announce?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"},
		{head: "GET /announce HTTP/1.1\nHost: x\n\n"},
		{head: "GET /k3y_-/scrape?x HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", close: true},
		{head: "GET /announce HTTP/1.0\r\n\r\n", close: true},
		{head: "GET /announce HTTP/1.0\r\nconnection: keep-alive\r\n\r\n", keepAlive: true},
		{head: "GET /announce HTTP/1.1\r\nHost: x\r\nX-Real: 1.2.3.4\r\nx-real:  5.6.7.8 \r\n\r\n", realIP: "5.6.7.8"},
		{head: "GET /announce HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"},
		{head: "GET /announce HTTP/1.1\r\n\r\n", handOff: true}, // no Host
		{head: "HEAD /announce HTTP/1.1\r\nHost: x\r\n\r\n", handOff: true},
		{head: "POST /announce HTTP/1.1\r\nHost: x\r\n\r\n", handOff: true},
		{head: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", handOff: true},
		{head: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", handOff: true},
		{head: "GET //announce HTTP/1.1\r\nHost: x\r\n\r\n", handOff: true},
		{head: "GET /a%2Fb/announce HTTP/1.1\r\nHost: x\r\n\r\n", handOff: true},
		{head: "GET /../announce HTTP/1.1\r\nHost: x\r\n\r\n", handOff: true},
		{head: "GET /a/b/announce HTTP/1.1\r\nHost: x\r\n\r\n", handOff: true},
		{head: "GET /announce HTTP/2.0\r\nHost: x\r\n\r\n", handOff: true},
		{head: "GET /announce HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", handOff: true},
		{head: "GET /announce HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", handOff: true},
		{head: "GET /announce HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", handOff: true},
		{head: "GET /announce HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", handOff: true},
		{head: "GET /announce HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", handOff: true},
	} {
		r, err := parseHead([]byte(tc.head), "X-Real")
		if tc.handOff {
			if err != errHandOff {
				t.Errorf("%q: %v, want hand-off", tc.head, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.head, err)
			continue
		}
		if r.close != tc.close || r.keepAlive10 != tc.keepAlive || string(r.realIP) != tc.realIP || r.hasRealIP != (tc.realIP != "") {
			t.Errorf("%q: close %v keep-alive %v real IP %q; want %v %v %q", tc.head, r.close, r.keepAlive10, r.realIP, tc.close, tc.keepAlive, tc.realIP)
		}
	}
	if n := headEnd([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET")); n != 27 {
		t.Errorf("headEnd = %d, want 27", n)
	}
	if n := headEnd([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); n != -1 {
		t.Errorf("headEnd of a partial head = %d, want -1", n)
	}
}

// FuzzParseHead checks that request heads of any shape are either parsed
// or handed off, never a panic, and that a parsed head routes.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("GET /announce?info_hash=%AA HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4, 5.6.7.8\r\n\r\n"))
	f.Add([]byte("GET /pk/scrape HTTP/1.0\nConnection: keep-alive\n\n"))
	f.Add([]byte("\r\n\r\nGET /announce HTTP/1.1\r\nHost:\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		b = b[skipBlank(b):]
		n := headEnd(b)
		if n < 0 {
			return
		}
		r, err := parseHead(b[:n], "X-Forwarded-For")
		if err != nil {
			if err != errHandOff {
				t.Fatalf("error %v", err)
			}
			return
		}
		if fastRoute(r.path) == routeNone {
			t.Fatalf("parsed head with unrouted path %q", r.path)
		}
	})
}

// rawConn dials the tracker's HTTP port.
func rawConn(t *testing.T, rt *running) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(rt.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestAnnouncePathConnections drives one keep-alive connection through
// pipelined announces, a hand-off to net/http mid-connection and a
// closing request, and checks that the announce path answers with the
// same headers as net/http's handler.
func TestAnnouncePathConnections(t *testing.T) {
	rt := start(t, Config{}, "4")
	q := "/announce?info_hash=" + goodHash + "&peer_id=" + goodPeer + "&port=9&left=1"
	c, br := rawConn(t, rt)
	// Two pipelined requests in one write, with bare LF line ends in the
	// second, then the index page on the same connection.
	io.WriteString(c, "GET "+q+" HTTP/1.1\r\nHost: t\r\n\r\nGET "+q+"&event=stopped HTTP/1.1\nHost: t\n\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
	resp, body := readResp(t, br)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "d8:completei0e10:incompletei1e") {
		t.Fatalf("first pipelined announce: %d %q", resp.StatusCode, body)
	}
	rec := httptest.NewRecorder()
	rt.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", q, nil))
	for _, h := range []string{"Content-Type", "Cache-Control"} {
		if resp.Header.Get(h) != rec.Header().Get(h) {
			t.Errorf("header %s: announce path %q, net/http %q", h, resp.Header.Get(h), rec.Header().Get(h))
		}
	}
	if resp.Header.Get("Date") == "" || resp.ContentLength != int64(len(body)) {
		t.Errorf("headers %v for a %d-byte body", resp.Header, len(body))
	}
	if _, body = readResp(t, br); !strings.HasPrefix(body, "d8:complete") {
		t.Fatalf("second pipelined announce: %q", body)
	}
	if resp, body = readResp(t, br); resp.StatusCode != 200 || !strings.Contains(body, "<html") {
		t.Fatalf("index page after announces: %d %.100q", resp.StatusCode, body)
	}
	// net/http owns the connection now and still answers announces.
	io.WriteString(c, "GET "+q+" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
	if resp, body = readResp(t, br); !strings.HasPrefix(body, "d8:complete") || !resp.Close {
		t.Fatalf("announce after hand-off: close=%v %q", resp.Close, body)
	}

	// HTTP/1.0 without keep-alive is answered and closed.
	c, br = rawConn(t, rt)
	io.WriteString(c, "GET "+q+" HTTP/1.0\r\n\r\n")
	if resp, body = readResp(t, br); !strings.HasPrefix(body, "d8:complete") || !resp.Close {
		t.Fatalf("HTTP/1.0 announce: close=%v %q", resp.Close, body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection after an HTTP/1.0 answer: %v, want EOF", err)
	}

	// A request with a body and an oversized head go to net/http, which
	// refuses them as it would have.
	c, br = rawConn(t, rt)
	io.WriteString(c, "GET "+q+" HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nxx")
	if _, body = readResp(t, br); !strings.HasPrefix(body, "d8:complete") {
		t.Fatalf("announce with a body: %q", body)
	}
	c, br = rawConn(t, rt)
	go io.WriteString(c, "GET "+q+" HTTP/1.1\r\nHost: t\r\nX-Long: "+strings.Repeat("a", 40<<10)+"\r\n\r\n")
	// net/http answers 431 and closes with the rest unread, so the answer
	// may be lost to a reset; either way no announce is answered.
	resp, err := http.ReadResponse(br, nil)
	var ne net.Error
	switch {
	case err == nil && resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge:
		t.Fatalf("oversized head: status %d", resp.StatusCode)
	case err != nil && errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("oversized head: no answer and no close: %v", err)
	}
}

// TestShutdownWithIdleConnections stops a tracker holding idle keep-alive
// connections on both paths; Serve must return (start's stop bounds it).
func TestShutdownWithIdleConnections(t *testing.T) {
	rt := start(t, Config{}, "4")
	q := "/announce?info_hash=" + goodHash + "&peer_id=" + goodPeer + "&port=9&left=1"
	c1, br1 := rawConn(t, rt)
	io.WriteString(c1, "GET "+q+" HTTP/1.1\r\nHost: t\r\n\r\n")
	readResp(t, br1)
	c2, br2 := rawConn(t, rt)
	io.WriteString(c2, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
	readResp(t, br2)
	c3, _ := rawConn(t, rt)
	io.WriteString(c3, "GET /annou") // half a request
	if err := rt.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := br1.ReadByte(); err == nil {
		t.Error("idle announce-path connection still open after shutdown")
	}
}
