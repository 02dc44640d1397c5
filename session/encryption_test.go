package session

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sowerbt/sower/engine"
)

// syncBuffer is a log sink the test reads while sessions write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestEncryptionPolicies transfers between two sessions, the leecher
// dialling the seed, for pairs of policies: those that can agree complete
// byte-identical over the connection the policies call for, the others
// move no data and say why in the log.
func TestEncryptionPolicies(t *testing.T) {
	for _, tc := range []struct {
		seed, leech Encryption
		want        string // the leecher's view of the connection; "fail" for none
		log         string // a line the refusing side logs
		limited     bool   // rate limits on both sides (writes in place through the limiter)
	}{
		{EncryptionRequire, EncryptionRequire, engine.EncryptionRC4, "", true},
		{EncryptionRequire, EncryptionRequire, engine.EncryptionRC4, "", false},
		// Both prefer: the obfuscated handshake, the payload in plaintext
		// (RC4 only where a side requires it).
		{EncryptionPrefer, EncryptionPrefer, engine.EncryptionObfuscated, "", false},
		{EncryptionRequire, EncryptionPrefer, engine.EncryptionRC4, "", false},
		{EncryptionPrefer, EncryptionRequire, engine.EncryptionRC4, "", false},
		{EncryptionOff, EncryptionPrefer, engine.EncryptionNone, "", false},
		{EncryptionPrefer, EncryptionOff, engine.EncryptionNone, "", false},
		{EncryptionOff, EncryptionRequire, "fail", "not retrying in plaintext: encryption is required", false},
		{EncryptionRequire, EncryptionOff, "fail", "refusing a plaintext connection: encryption is required", false},
	} {
		name := tc.seed.String() + "-to-" + tc.leech.String()
		if tc.limited {
			name += "-limited"
		}
		t.Run(name, func(t *testing.T) {
			var logs, leechLogs syncBuffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			leechLogger := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, &leechLogs), &slog.HandlerOptions{Level: slog.LevelDebug}))
			defer func() {
				if t.Failed() {
					t.Log(logs.String())
				}
			}()
			seedDir := t.TempDir()
			mi, data := writeTorrent(t, seedDir, 1<<20+777, "", false)
			seedCfg := Config{Encryption: tc.seed, Logger: logger}
			leechCfg := Config{Encryption: tc.leech, Logger: leechLogger}
			if tc.limited {
				seedCfg.UploadLimit = engine.NewLimiter(16 << 20)
				leechCfg.DownloadLimit = engine.NewLimiter(16 << 20)
			}
			seedSess := newSession(t, seedCfg)
			seed, err := seedSess.AddTorrent(t.Context(), mi, TorrentOptions{Dir: seedDir})
			if err != nil {
				t.Fatal(err)
			}
			defer seed.Close()
			leechDir := t.TempDir()
			leechSess := newSession(t, leechCfg)
			addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), seedSess.Port())
			leech, err := leechSess.AddTorrent(t.Context(), mi, TorrentOptions{Dir: leechDir, Peers: []netip.AddrPort{addr}})
			if err != nil {
				t.Fatal(err)
			}
			defer leech.Close()
			if tc.want == "fail" {
				waitFor(t, "the refusal is logged", func() bool { return strings.Contains(logs.String(), tc.log) })
				time.Sleep(time.Second) // a retry, were there one, would be done
				if st := leech.Stats(); st.Completed != 0 || len(st.Peerlist) != 0 {
					t.Fatalf("data moved against the policies: %d bytes, peers %+v", st.Completed, st.Peerlist)
				}
				return
			}
			select {
			case <-leech.Done():
			case <-time.After(30 * time.Second):
				t.Fatalf("download did not complete: %+v", leech.Stats())
			}
			// The peer list is gone once both are seeds: the engine's log
			// says how the connection the leecher dialled was made.
			m := regexp.MustCompile(`msg="peer connected".* outgoing=true encryption=(\S*)`).FindStringSubmatch(leechLogs.String())
			if m == nil {
				t.Fatal("the leecher logged no outgoing connection")
			}
			if enc := strings.Trim(m[1], `"`); enc != tc.want {
				t.Errorf("connection encryption %q, want %q", enc, tc.want)
			}
			got, err := os.ReadFile(filepath.Join(leechDir, "data.bin"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("downloaded data differs (err %v)", err)
			}
		})
	}
}

// TestEncryptedMetadataFetch: a magnet's metadata is fetched under the
// session's policy too, so a session that requires encryption gets it
// from a seed that requires it, and one that is off does not.
func TestEncryptedMetadataFetch(t *testing.T) {
	seedDir := t.TempDir()
	mi, _ := writeTorrent(t, seedDir, 256<<10+5, "", false)
	seedSess := newSession(t, Config{Encryption: EncryptionRequire})
	seed, err := seedSess.AddTorrent(t.Context(), mi, TorrentOptions{Dir: seedDir})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), seedSess.Port())
	for _, tc := range []struct {
		enc Encryption
		ok  bool
	}{{EncryptionRequire, true}, {EncryptionPrefer, true}, {EncryptionOff, false}} {
		s := newSession(t, Config{Encryption: tc.enc})
		w, err := s.Join(mi.InfoHash, SwarmOptions{Peers: []netip.AddrPort{addr}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		info, err := w.FetchMetadata(ctx)
		cancel()
		w.Leave()
		if tc.ok && (err != nil || !bytes.Equal(info, mi.InfoBytes)) {
			t.Errorf("%v: metadata %d bytes, err %v", tc.enc, len(info), err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%v: fetched metadata from a seed that requires encryption", tc.enc)
		}
	}
}
