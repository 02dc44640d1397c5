package testpeers

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// whitelistFile is opentracker's whitelist, inside its -d directory.
const whitelistFile = "whitelist"

// Tracker is a running opentracker on 127.0.0.1. Debian builds it
// whitelist-only: a torrent must be passed to Allow before it is tracked
// (others get "Requested download is not authorized").
type Tracker struct {
	// AnnounceURL is the HTTP announce URL.
	AnnounceURL string
	// UDPAnnounceURL is the UDP (BEP 15) announce URL, on the same port.
	UDPAnnounceURL string
	// Port is the TCP and UDP port.
	Port int

	proc   *process
	dir    string
	client *http.Client
	mu     sync.Mutex // serialises whitelist updates
}

// StartOpentracker starts opentracker on a free port of 127.0.0.1 (HTTP and
// UDP) with an empty whitelist, and returns once it answers announces. It
// runs (dropping root to nobody, chrooted in a temporary directory) until
// the end of the test.
func StartOpentracker(t testing.TB) *Tracker {
	t.Helper()
	prog := needProgram(t, "opentracker", "opentracker")
	dir := t.TempDir()
	// After dropping root, opentracker must still read its directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("opentracker: %v", err)
	}
	// Empty at first (opentracker warns that it "can't open" an empty file).
	if err := os.WriteFile(filepath.Join(dir, whitelistFile), nil, 0o644); err != nil {
		t.Fatalf("opentracker: %v", err)
	}
	port := FreePort(t)
	ps := strconv.Itoa(port)
	cmd := exec.Command(prog, "-i", "127.0.0.1", "-p", ps, "-P", ps, "-A", "127.0.0.1",
		"-d", dir, "-u", "nobody", "-w", whitelistFile)
	tr := &Tracker{
		AnnounceURL:    "http://127.0.0.1:" + ps + "/announce",
		UDPAnnounceURL: "udp://127.0.0.1:" + ps + "/announce",
		Port:           port,
		proc:           startProcess(t, "opentracker", cmd, nil, false),
		dir:            dir,
		// opentracker closes every connection after its reply.
		client: &http.Client{Timeout: rpcTimeout, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	deadline := time.Now().Add(startWait)
	for {
		_, err := tr.announce(context.Background(), make([]byte, 20), "stopped")
		if err == nil {
			break
		}
		if gone, exitErr := tr.proc.exited(); gone {
			t.Fatalf("opentracker: %v\n%s", exitErr, tailFile(tr.proc.logPath, logTailLines))
		}
		if time.Now().After(deadline) {
			t.Fatalf("opentracker did not answer within %v: %v", startWait, err)
		}
		time.Sleep(pollInterval)
	}
	return tr
}

// Allow adds the torrent with the given hex info-hash to the whitelist,
// makes opentracker reload it (SIGHUP) and returns once announces for it
// are accepted.
func (tr *Tracker) Allow(t testing.TB, infoHashHex string) {
	t.Helper()
	ih, err := hex.DecodeString(infoHashHex)
	if err != nil || len(ih) != 20 {
		t.Fatalf("Tracker.Allow: info-hash %q is not 40 hex digits", infoHashHex)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(tr.dir, whitelistFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("Tracker.Allow: %v", err)
	}
	_, err = fmt.Fprintf(f, "%x\n", ih)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("Tracker.Allow: write whitelist: %v", err)
	}
	if err := tr.proc.signal(syscall.SIGHUP); err != nil {
		t.Fatalf("Tracker.Allow: %v", err)
	}

	// A "started" announce is refused until the reload is done ("stopped"
	// ones are answered whatever the whitelist says). The probe then
	// withdraws itself; meanwhile its port 1 is unreachable, so harmless.
	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()
	for {
		reply, err := tr.announce(ctx, ih, "started")
		if err == nil && !bytes.Contains(reply, []byte("failure reason")) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Tracker.Allow %s: not accepted within %v: %v %q", infoHashHex, startWait, err, reply)
		}
		time.Sleep(pollInterval)
	}
	if _, err := tr.announce(ctx, ih, "stopped"); err != nil {
		t.Fatalf("Tracker.Allow: withdraw probe: %v", err)
	}
}

// Stop stops the tracker; the end of the test does it too.
func (tr *Tracker) Stop() { tr.proc.stop() }

// announce sends one announce for a probe peer at 127.0.0.1:1 and returns
// the raw reply.
func (tr *Tracker) announce(ctx context.Context, infoHash []byte, event string) ([]byte, error) {
	q := "info_hash=" + url.QueryEscape(string(infoHash)) +
		"&peer_id=-TP0001-testpeersprb&port=1&uploaded=0&downloaded=0&left=1&compact=1&numwant=0&event=" + event
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tr.AnnounceURL+"?"+q, nil)
	if err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	resp, err := tr.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("announce: read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("announce: HTTP %s", resp.Status)
	}
	return body, nil
}

// staticTracker serves, until the end of the test, an HTTP tracker on
// 127.0.0.1 that answers every announce with the given peers (host:port,
// IPv4 or IPv6) and returns its announce URL. It is how programs that
// cannot be told to dial a peer (aria2c) are given one.
func staticTracker(t testing.TB, peers []string) string {
	t.Helper()
	var v4, v6 []byte
	for _, p := range peers {
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			t.Fatalf("peer %q: want IP:port: %v", p, err)
		}
		if ap.Addr().Unmap().Is4() {
			a := ap.Addr().Unmap().As4()
			v4 = binary.BigEndian.AppendUint16(append(v4, a[:]...), ap.Port())
		} else {
			a := ap.Addr().As16()
			v6 = binary.BigEndian.AppendUint16(append(v6, a[:]...), ap.Port())
		}
	}
	// A short interval makes the client ask again soon, in case a peer was
	// not listening yet.
	reply := fmt.Appendf(nil, "d8:intervali5e12:min intervali1e5:peers%d:%s6:peers6%d:%se",
		len(v4), v4, len(v6), v6)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(reply)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/announce"
}
