package daemon

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// rpcClient speaks the Transmission RPC to a daemon under test.
type rpcClient struct {
	t     testing.TB
	url   string
	token string
	user  string
	pass  string
	// client, if set, replaces http.DefaultClient (e.g. for a time-out).
	client *http.Client
}

func newRPC(t testing.TB, d *running) *rpcClient {
	return &rpcClient{t: t, url: "http://" + d.RPCAddr().String() + "/transmission/rpc"}
}

func (c *rpcClient) post(body io.Reader, hdr map[string]string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.url, body)
	if c.token != "" {
		req.Header.Set(sessionHeader, c.token)
	}
	if c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	cl := http.DefaultClient
	if c.client != nil {
		cl = c.client
	}
	resp, err := cl.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// call does the 409 handshake if needed and returns the decoded reply.
func (c *rpcClient) call(method string, args any) (string, map[string]json.RawMessage) {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"method": method, "arguments": args, "tag": 7})
	for range 2 {
		resp := c.post(bytes.NewReader(body), nil)
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusConflict {
			c.token = resp.Header.Get(sessionHeader)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			c.t.Fatalf("%s: HTTP %d: %s", method, resp.StatusCode, data)
		}
		var r struct {
			Result    string                     `json:"result"`
			Arguments map[string]json.RawMessage `json:"arguments"`
			Tag       int                        `json:"tag"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			c.t.Fatalf("%s: bad reply %q: %v", method, data, err)
		}
		if r.Tag != 7 {
			c.t.Fatalf("%s: tag %d not echoed", method, r.Tag)
		}
		return r.Result, r.Arguments
	}
	c.t.Fatalf("%s: 409 twice", method)
	return "", nil
}

func TestRPCHandshakeAndCSRF(t *testing.T) {
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0"})
	c := newRPC(t, d)
	resp := c.post(strings.NewReader(`{"method":"session-get"}`), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || resp.Header.Get(sessionHeader) == "" {
		t.Fatalf("no token: HTTP %d, header %q; want 409 with a token", resp.StatusCode, resp.Header.Get(sessionHeader))
	}
	c.token = "stale"
	if res, _ := c.call("session-get", nil); res != "success" {
		t.Fatalf("session-get: %s", res)
	}
	// A cross-site page carrying the token (it cannot, but if it could)
	// is refused by its Origin.
	resp = c.post(strings.NewReader(`{"method":"session-get"}`), map[string]string{"Origin": "http://evil.example"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site request: HTTP %d, want 403", resp.StatusCode)
	}
	resp = c.post(strings.NewReader(`{"method":"session-get"}`), map[string]string{"Origin": "http://" + d.RPCAddr().String()})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("same-origin request: HTTP %d, want 200", resp.StatusCode)
	}
	// The JSON API's POSTs need the token too.
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.RPCAddr().String()+"/api/v1/torrents", strings.NewReader(`{}`))
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusConflict {
		t.Fatalf("API POST without token: HTTP %d, want 409", r2.StatusCode)
	}
}

func TestRPCMalformed(t *testing.T) {
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0"})
	c := newRPC(t, d)
	c.call("session-get", nil)
	for _, body := range []string{`{`, `[]`, `{"method": 5}`, `{"method":"torrent-get","arguments":[1]}`,
		`{"method":"torrent-get","arguments":{"fields":"id"}}`, `{"method":"nope"}`,
		`{"method":"torrent-add","arguments":{"metainfo":"!!!"}}`, `{"method":"torrent-add","arguments":{"metainfo":"aGVsbG8="}}`,
		`{"method":"torrent-get","arguments":{"fields":["id"],"ids":[{}]}}`, `{"method":"session-set","arguments":{"speed-limit-down":"x"}}`,
		`{"method":"session-set","arguments":{"no-such-key":1}}`} {
		resp := c.post(strings.NewReader(body), nil)
		var r struct{ Result string }
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || r.Result == "success" || r.Result == "" {
			t.Errorf("%s: HTTP %d result %q; want 200 with an error result", body, resp.StatusCode, r.Result)
		}
	}
	if len(d.List()) != 0 {
		t.Fatal("malformed requests added torrents")
	}
}

// hugeBody streams a torrent-add whose metainfo is 100 MiB of base64.
type hugeBody struct{ left int }

func (h *hugeBody) Read(p []byte) (int, error) {
	if h.left <= 0 {
		return 0, io.EOF
	}
	n := min(len(p), h.left)
	for i := range n {
		p[i] = 'A'
	}
	h.left -= n
	return n, nil
}

func TestRPCRefusesHugeUpload(t *testing.T) {
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0"})
	c := newRPC(t, d)
	c.call("session-get", nil)
	body := io.MultiReader(strings.NewReader(`{"method":"torrent-add","arguments":{"metainfo":"`), &hugeBody{left: 100 << 20}, strings.NewReader(`"}}`))
	resp := c.post(body, nil)
	var r struct{ Result string }
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if r.Result == "success" || !strings.Contains(r.Result, "larger") {
		t.Fatalf("100 MiB upload: result %q", r.Result)
	}
}

func TestRPCAuthAndGzip(t *testing.T) {
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0", Password: "secret"})
	c := newRPC(t, d)
	resp := c.post(strings.NewReader(`{"method":"session-get"}`), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: HTTP %d, want 401", resp.StatusCode)
	}
	c.user, c.pass = "sower", "wrong"
	resp = c.post(strings.NewReader(`{"method":"session-get"}`), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: HTTP %d, want 401", resp.StatusCode)
	}
	c.pass = "secret"
	c.call("session-get", nil)
	resp = c.post(strings.NewReader(`{"method":"session-get","arguments":{}}`), map[string]string{"Accept-Encoding": "gzip"})
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Result    string
		Arguments map[string]any
	}
	if err := json.NewDecoder(zr).Decode(&r); err != nil || r.Result != "success" || r.Arguments["rpc-version"] == nil {
		t.Fatalf("gzipped reply: %v %+v", err, r)
	}
}

// TestGeneratedPasswordShownOnceStoredHashed: a daemon reachable beyond
// loopback without a configured password generates one, hands it once to
// ShowPassword, and keeps only its hash: neither its log nor its state
// database holds it (before, both did), and a restart asks for the same
// password without showing it again. With nobody to show it to, none is
// generated and the daemon does not start.
func TestGeneratedPasswordShownOnceStoredHashed(t *testing.T) {
	beyond := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 9091}
	dataDir := t.TempDir()
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var shown []string
	cfg := Config{DataDir: dataDir, RPCAddr: "127.0.0.1:0", Logger: logger,
		ShowPassword: func(user, password string) error {
			shown = append(shown, user, password)
			return nil
		}}
	d := startDaemon(t, cfg)
	// The RPC listens on loopback in the test; authentication is set up
	// as for an address beyond it.
	if err := d.setupAuth(beyond); err != nil {
		t.Fatal(err)
	}
	if len(shown) != 2 || shown[1] == "" {
		t.Fatalf("ShowPassword got %q, want one user and password", shown)
	}
	user, password := shown[0], shown[1]
	c := newRPC(t, d)
	resp := c.post(strings.NewReader(`{"method":"session-get"}`), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: HTTP %d, want 401", resp.StatusCode)
	}
	c.user, c.pass = user, password
	c.call("session-get", nil)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	inLog := strings.Contains(logBuf.String(), password)
	logMu.Unlock()
	if inLog {
		t.Error("the generated password is in the log")
	}
	db, err := os.ReadFile(filepath.Join(dataDir, "sower.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte(password)) {
		t.Error("the generated password is in the state database in clear")
	}

	// A restart asks for the same password and shows nothing.
	cfg.ShowPassword = func(string, string) error {
		t.Error("a password was shown again at restart")
		return nil
	}
	d = startDaemon(t, cfg)
	if err := d.setupAuth(beyond); err != nil {
		t.Fatal(err)
	}
	c = newRPC(t, d)
	c.user, c.pass = user, "wrong"
	resp = c.post(strings.NewReader(`{"method":"session-get"}`), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password after restart: HTTP %d, want 401", resp.StatusCode)
	}
	c.pass = password
	c.call("session-get", nil)

	// Nobody to show one to: no password, no start.
	d2 := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0",
		ShowPassword: func(string, string) error { return errors.New("no terminal") }})
	if err := d2.setupAuth(beyond); err == nil || !strings.Contains(err.Error(), "no terminal") {
		t.Fatalf("setupAuth without a way to show the password: %v", err)
	}
	if d2.Settings().GeneratedPasswordHash != "" {
		t.Fatal("a password nobody saw was stored")
	}
}

// TestPlainPasswordMigrates: a generated password that an older version
// stored in clear is replaced by its hash at the next start, and still
// opens the RPC.
func TestPlainPasswordMigrates(t *testing.T) {
	dataDir := t.TempDir()
	s, err := openStore(filepath.Join(dataDir, "sower.db"))
	if err != nil {
		t.Fatal(err)
	}
	legacy := []byte(`{"download_dir":"` + dataDir + `","download_queue_size":5,"peers_per_torrent":50,"generated_password":"0123456789abcdef01234567"}`)
	if err := s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSession).Put(keySettings, legacy) }); err != nil {
		t.Fatal(err)
	}
	s.close()
	d := startDaemon(t, Config{DataDir: dataDir, RPCAddr: "127.0.0.1:0"})
	if err := d.setupAuth(&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 9091}); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	d.db.view(func(tx *bolt.Tx) error {
		raw = bytes.Clone(tx.Bucket(bucketSession).Get(keySettings))
		return nil
	})
	if bytes.Contains(raw, []byte("0123456789abcdef01234567")) || !bytes.Contains(raw, []byte("generated_password_hash")) {
		t.Fatalf("stored settings after migration: %s", raw)
	}
	c := newRPC(t, d)
	c.user, c.pass = "sower", "0123456789abcdef01234567"
	c.call("session-get", nil)
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRPCTorrentLifecycle(t *testing.T) {
	f := newFixture(t, 200<<10, 16<<10)
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0"})
	c := newRPC(t, d)
	res, args := c.call("torrent-add", map[string]any{"metainfo": base64.StdEncoding.EncodeToString(f.torrent), "download-dir": f.dir, "paused": true})
	if res != "success" || args["torrent-added"] == nil {
		t.Fatalf("torrent-add: %s %s", res, args)
	}
	res, args = c.call("torrent-add", map[string]any{"metainfo": base64.StdEncoding.EncodeToString(f.torrent)})
	if res != "success" || args["torrent-duplicate"] == nil {
		t.Fatalf("second torrent-add: %s %s", res, args)
	}
	get := func() map[string]any {
		_, args := c.call("torrent-get", map[string]any{"ids": []any{1}, "fields": []string{"id", "status", "percentDone", "name", "files", "fileStats", "pieces", "hashString", "wanted"}})
		var list []map[string]any
		json.Unmarshal(args["torrents"], &list)
		if len(list) != 1 {
			t.Fatalf("torrent-get: %d torrents", len(list))
		}
		return list[0]
	}
	if g := get(); g["status"] != 0.0 || g["name"] != f.name {
		t.Fatalf("paused torrent: %v", g)
	}
	c.call("torrent-start", map[string]any{"ids": []any{f.hashString()}})
	waitFor(t, 30*time.Second, "seeding", func() bool { return get()["status"] == 6.0 })
	g := get()
	if g["percentDone"] != 1.0 || len(g["files"].([]any)) != 1 {
		t.Fatalf("seeding torrent: %v", g)
	}
	pieces, _ := base64.StdEncoding.DecodeString(g["pieces"].(string))
	if len(pieces) != 2 || pieces[0] != 0xff || pieces[1] != 0xf8 {
		t.Fatalf("pieces bitfield %x, want fff8 (13 pieces)", pieces)
	}
	if res, _ := c.call("torrent-set", map[string]any{"ids": 1, "files-unwanted": []int{5}}); !strings.Contains(res, "out of range") {
		t.Fatalf("torrent-set with a bad file index: %q", res)
	}
	if res, _ := c.call("torrent-set", map[string]any{"ids": 1, "uploadLimit": 100, "uploadLimited": true}); res != "success" {
		t.Fatal(res)
	}
	if st := stateOf(t, d.Daemon, f.ih); st.UploadLimit != 100_000 {
		t.Fatalf("upload limit %d, want 100000", st.UploadLimit)
	}
	c.call("torrent-stop", map[string]any{"ids": 1})
	waitFor(t, 10*time.Second, "stopped", func() bool { return get()["status"] == 0.0 })
	c.call("torrent-remove", map[string]any{"ids": 1, "delete-local-data": false})
	_, args = c.call("torrent-get", map[string]any{"fields": []string{"id"}})
	if string(args["torrents"]) != "[]" {
		t.Fatalf("after remove: %s", args["torrents"])
	}
}

func (f *fixture) hashString() string { return InfoHashString(f.ih) }

// TestTransmissionRemote drives the daemon with the real transmission-remote
// (Debian transmission-cli): add, list, a real transfer, stop, start, remove.
func TestTransmissionRemote(t *testing.T) {
	bin, err := exec.LookPath("transmission-remote")
	if err != nil {
		t.Skip("transmission-remote not installed (Debian package transmission-cli)")
	}
	f := newFixture(t, 2<<20, 32<<10)
	s := seeder(t, f)
	d := startDaemon(t, Config{DataDir: t.TempDir(), RPCAddr: "127.0.0.1:0"})
	out := t.TempDir()
	tf := filepath.Join(t.TempDir(), "x.torrent")
	writeFile(t, tf, f.torrent)
	tr := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{d.RPCAddr().String()}, args...)...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("transmission-remote %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	if o := tr("-w", out, "-a", tf); !strings.Contains(o, "success") {
		t.Fatalf("-a: %s", o)
	}
	d.AddPeers(f.ih, s.peerAddr())
	waitFor(t, 60*time.Second, "transfer", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	sameFile(t, filepath.Join(out, f.name), f.data)
	if o := tr("-l"); !strings.Contains(o, f.name) || !strings.Contains(o, "100%") {
		t.Fatalf("-l does not show the finished torrent:\n%s", o)
	}
	tr("-t", "1", "-S")
	waitFor(t, 10*time.Second, "stop", func() bool { return stateOf(t, d.Daemon, f.ih).State == "stopped" })
	if o := tr("-l"); !strings.Contains(o, "Stopped") && !strings.Contains(o, "Finished") {
		t.Fatalf("-l after -S:\n%s", o)
	}
	tr("-t", "1", "-s")
	waitFor(t, 10*time.Second, "start", func() bool { return stateOf(t, d.Daemon, f.ih).State == "seeding" })
	if o := tr("-t", "1", "-i"); !strings.Contains(o, f.hashString()) {
		t.Fatalf("-i:\n%s", o)
	}
	tr("-t", "1", "-r")
	waitFor(t, 10*time.Second, "removal", func() bool { return len(d.List()) == 0 })
	sameFile(t, filepath.Join(out, f.name), f.data)
	if o := tr("-l"); strings.Contains(o, f.name) {
		t.Fatalf("-l after -r still lists it:\n%s", o)
	}
}

// TestScalarFieldsMatchTrField holds the hand-written encoding of the
// list fields equal to encoding/json's of trField's values.
func TestScalarFieldsMatchTrField(t *testing.T) {
	statuses := []Status{
		{ID: 7, Name: `a "quoted" name <b>`, InfoHash: "00ff", State: "seeding", HasMeta: true, Wanted: 100, Completed: 100, TotalSize: 120,
			Downloaded: 5, Uploaded: 1 << 40, Peers: 3, Seeds: 1, Queue: 2, UploadRate: 12.7, DownloadRate: 3.2},
		{ID: 8, Name: "naïve", State: "downloading", HasMeta: true, Wanted: 100, Completed: 40, Left: 60, ETA: 30, Peers: 5, Seeds: 4},
		{ID: 9, Name: "x", State: "error", Error: "disk full\n", Paused: true, HasMeta: true, Left: 0, ETA: -1},
		{ID: 10, Name: "m", State: "metadata", Error: "fetching metadata", ETA: -1, Left: 1},
		{ID: 11, Name: "q", State: "queued", HasMeta: true, Left: 0, Paused: true},
	}
	fields := []string{"id", "name", "hashString", "status", "error", "errorString", "rateDownload", "rateUpload", "eta",
		"totalSize", "sizeWhenDone", "leftUntilDone", "haveValid", "downloadedEver", "uploadedEver", "peersConnected",
		"peersSendingToUs", "peersGettingFromUs", "queuePosition", "isFinished"}
	for _, s := range statuses {
		for _, f := range fields {
			got, ok := appendScalarField(nil, f, &s)
			if !ok {
				t.Fatalf("field %q not handled", f)
			}
			v, _ := trField(f, s, nil)
			want, _ := json.Marshal(v)
			if string(got) != string(want) {
				t.Errorf("torrent %d field %q: %s, want %s", s.ID, f, got, want)
			}
		}
		all := append([]string{"percentDone", "uploadRatio", "nonsense"}, fields...)
		obj, err := appendTorrent(nil, all, &s)
		if err != nil || !json.Valid(obj) {
			t.Fatalf("torrent %d: %s is not valid JSON (%v)", s.ID, obj, err)
		}
	}
}
