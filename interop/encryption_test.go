package interop

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
)

// TestEncryption moves a small torrent between `sower` and real clients
// that demand Message Stream Encryption, each way: the transfer must
// complete byte-identical, and Sower's log must show the connection
// encrypted as the other side demands (rc4, or the obfuscated handshake
// with a plaintext payload). Transmission is always dialled by Sower (it
// never dials loopback peers).
func TestEncryption(t *testing.T) {
	src := filepath.Join(t.TempDir(), "enc.bin")
	testpeers.RandomFile(t, src, 4<<20+4321)
	for _, tc := range []struct {
		client string
		enc    testpeers.Encryption
		sower  string // --encryption
		want   string // the connection's encryption in Sower's log
	}{
		{"libtorrent", testpeers.RequireRC4, "require", "rc4"},
		{"libtorrent", testpeers.RequireObfuscation, "prefer", "obfuscated"},
		{"aria2", testpeers.RequireRC4, "require", "rc4"},
		{"transmission", testpeers.RequireRC4, "require", "rc4"},
	} {
		name := tc.client + "-" + tc.enc.String() + "/sower-" + tc.sower
		t.Run(name+"/client-seeds", func(t *testing.T) {
			t.Parallel()
			torrent := trackedTorrent(t, src)
			var seed *testpeers.Peer
			var extra []string
			switch tc.client {
			case "libtorrent":
				seed = testpeers.LibtorrentSeedEncrypted(t, torrent, seedDir(t, src), tc.enc)
			case "aria2":
				seed = testpeers.Aria2SeedEncrypted(t, torrent, seedDir(t, src), tc.enc)
			case "transmission":
				seed = testpeers.TransmissionSeedEncrypted(t, torrent, seedDir(t, src), tc.enc)
				extra = []string{"--peer", seed.Addr()}
			}
			waitPeer(t, seed, seedReadyWait)
			out := t.TempDir()
			args := append([]string{"get", "-o", out, "--port", strconv.Itoa(testpeers.FreePort(t)), "--quiet", "--encryption", tc.sower}, extra...)
			get := startSower(t, "get", append(args, torrent)...)
			get.ExitOK(t, transferWait)
			testpeers.SameTree(t, src, filepath.Join(out, filepath.Base(src)))
			checkEncryption(t, get.Output(t), tc.want)
		})
		t.Run(name+"/sower-seeds", func(t *testing.T) {
			t.Parallel()
			torrent := trackedTorrent(t, src)
			out := t.TempDir()
			port := strconv.Itoa(testpeers.FreePort(t))
			var get *testpeers.Peer
			var seed interface{ Output(testing.TB) string }
			if tc.client == "transmission" {
				get = testpeers.TransmissionGetEncrypted(t, torrent, out, tc.enc)
				seed = startSower(t, "seed", "seed", "--port", port, "--quiet", "--encryption", tc.sower, "--peer", get.Addr(), torrent, seedDir(t, src))
			} else {
				p := startSower(t, "seed", "seed", "--port", port, "--quiet", "--encryption", tc.sower, torrent, seedDir(t, src))
				ctx, cancel := context.WithTimeout(context.Background(), seedReadyWait)
				p.WaitLog(t, ctx, announcedRe)
				cancel()
				seed = p
				if tc.client == "aria2" {
					get = testpeers.Aria2GetEncrypted(t, torrent, out, tc.enc)
				} else {
					get = testpeers.LibtorrentGetEncrypted(t, torrent, out, tc.enc)
				}
			}
			waitPeer(t, get, transferWait)
			testpeers.SameTree(t, src, filepath.Join(out, filepath.Base(src)))
			checkEncryption(t, seed.Output(t), tc.want)
		})
	}
}

var peerConnectedRe = regexp.MustCompile(`msg="peer connected".* encryption=(\S*)`)

// checkEncryption fails unless every peer connection in a Sower log was
// made with the encryption want.
func checkEncryption(t *testing.T, log, want string) {
	t.Helper()
	m := peerConnectedRe.FindAllStringSubmatch(log, -1)
	if len(m) == 0 {
		t.Fatal("sower logged no peer connection")
	}
	for _, c := range m {
		if got := strings.Trim(c[1], `"`); got != want {
			t.Errorf("a connection with encryption %q, want %q: %s", got, want, c[0])
		}
	}
}

// TestEncryptionAgainstPlaintextPeer runs `sower get` against a seed that
// speaks plaintext only (`sower seed --encryption off`, which closes MSE
// connections): with --encryption require no data moves and the log says
// why; with prefer the transfer completes after the plaintext fallback.
func TestEncryptionAgainstPlaintextPeer(t *testing.T) {
	src := filepath.Join(t.TempDir(), "plain.bin")
	testpeers.RandomFile(t, src, 2<<20+99)
	torrent := testpeers.Mktorrent(t, src, "", pieceLen)
	port := strconv.Itoa(testpeers.FreePort(t))
	startSower(t, "seed", "seed", "--port", port, "--quiet", "--no-dht", "--encryption", "off", torrent, seedDir(t, src))
	peer := "127.0.0.1:" + port

	out := t.TempDir()
	req := startSower(t, "get-require", "get", "-o", out, "--port", strconv.Itoa(testpeers.FreePort(t)), "--quiet", "--no-dht",
		"--encryption", "require", "--peer", peer, torrent)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	req.WaitLog(t, ctx, regexp.MustCompile(`peer refused an encrypted connection; not retrying in plaintext: encryption is required`))
	cancel()
	time.Sleep(2 * time.Second) // a wrong plaintext retry would be done by now
	if peerConnectedRe.MatchString(req.Output(t)) {
		t.Fatal("sower --encryption require connected to a plaintext-only peer")
	}
	if req.Exited() {
		t.Fatal("sower get --encryption require exited; it should keep trying")
	}
	if n := allocatedBytes(out); n > 0 {
		t.Fatalf("%d bytes written with no allowed peer", n)
	}

	out2 := t.TempDir()
	pref := startSower(t, "get-prefer", "get", "-o", out2, "--port", strconv.Itoa(testpeers.FreePort(t)), "--quiet", "--no-dht",
		"--encryption", "prefer", "--peer", peer, torrent)
	pref.ExitOK(t, transferWait)
	testpeers.SameTree(t, src, filepath.Join(out2, filepath.Base(src)))
	checkEncryption(t, pref.Output(t), "")
}
