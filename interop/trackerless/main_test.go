package trackerless

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/sowertest"
)

// binEnv passes the path of the sower binary built by TestMain to the
// tests without a package-level variable. Set beforehand, it names a
// binary to test instead (a release build, or one built with
// `go build -overlay` to try a fix in cmd/sower).
const binEnv = "SOWER_TRACKERLESS_BIN"

// testTimeout bounds each test's waits as a whole.
const testTimeout = 3 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(sowertest.Main(m, binEnv))
}

// startSower runs the sower binary (see sowertest.Start). If firstLine is
// not nil, it receives the first line of stdout (which still goes to the
// log too).
func startSower(t testing.TB, name string, firstLine chan<- string, args ...string) *sowertest.Proc {
	t.Helper()
	bin := sowertest.Bin(t, binEnv)
	if firstLine == nil {
		return sowertest.Start(t, bin, name, args...)
	}
	first := true
	return sowertest.StartLines(t, bin, name, func(line string) {
		if first {
			firstLine <- line
			first = false
		}
	}, args...)
}

// logTime is the time attribute of slog's text handler.
var logTime = regexp.MustCompile(`^time=(\S+) `)

// when returns how long after p started the first log line matching re
// was written, from the line's own timestamp.
func when(p *sowertest.Proc, re *regexp.Regexp) (time.Duration, bool) {
	f, err := os.Open(p.LogPath())
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !re.MatchString(line) {
			continue
		}
		m := logTime.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		return at.Sub(p.Started()), true
	}
	return 0, false
}

// matches reports whether any log line of p so far matches re.
func matches(p *sowertest.Proc, re *regexp.Regexp) bool {
	_, ok := when(p, re)
	return ok
}

// startDHTNode starts a standalone `sower dht` node on 127.0.0.1 with rate
// limits off (every node of the test shares one IP) and returns its
// address, the bootstrap node of the test's private DHT.
func startDHTNode(t testing.TB) string {
	t.Helper()
	return startDHTNodeAt(t, "127.0.0.1:0")
}

// startDHTNodeAt is startDHTNode on the given address, such as [::1]:0.
func startDHTNodeAt(t testing.TB, listen string) string {
	t.Helper()
	first := make(chan string, 1)
	node := startSower(t, "dht", first, "dht", "--listen", listen, "--rate-limit", "0")
	select {
	case line := <-first:
		// "listening on ADDR id HEX"
		f := strings.Fields(line)
		if len(f) != 5 || f[0] != "listening" || f[1] != "on" || f[3] != "id" {
			t.Fatalf("sower dht: unexpected first line %q", line)
		}
		return f[2]
	case <-node.Done():
		t.Fatalf("sower dht exited: %v\n%s", node.Err(), node.Tail(20))
	case <-time.After(20 * time.Second):
		t.Fatal("sower dht did not report its address within 20s")
	}
	return ""
}
