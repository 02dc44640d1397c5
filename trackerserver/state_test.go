package trackerserver

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/tracker"
)

func TestPrivateModeAndRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := st.AddUser("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddUser("alice"); err == nil {
		t.Error("duplicate user accepted")
	}
	bob, _ := st.AddUser("bob")
	if _, err := st.RevokeUser("bob"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	ih := id("private-torrent")
	wl := filepath.Join(t.TempDir(), "registered")
	os.WriteFile(wl, []byte(hex.EncodeToString(ih[:])+"\n"), 0o600)
	cfg := Config{DataDir: dir, Mode: ModePrivate, WhitelistFile: wl}
	rt := start(t, cfg, "4")
	if _, err := OpenStore(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("second open while running: %v, want ErrLocked", err)
	}
	c := testClient()
	ctx := ctx10(t)
	ann := func(url string, up, down int64, ev tracker.Event) error {
		_, err := c.Announce(ctx, url, tracker.AnnounceRequest{InfoHash: ih, PeerID: id("alice-peer"), Port: 5, Left: 1, Uploaded: up, Downloaded: down, Event: ev})
		return err
	}
	var fe *tracker.FailureError
	if err := ann(rt.httpURL, 0, 0, tracker.Started); !errors.As(err, &fe) || fe.Reason != errNeedPasskey.Error() {
		t.Errorf("no passkey: %v", err)
	}
	for _, pk := range []string{bob.Passkey, "0000"} {
		if err := ann(rt.base+"/"+pk+"/announce", 0, 0, tracker.Started); !errors.As(err, &fe) || fe.Reason != "unknown passkey" {
			t.Errorf("passkey %q: %v, want unknown passkey", pk, err)
		}
	}
	url := rt.base + "/" + alice.Passkey + "/announce"
	udpURL := strings.TrimSuffix(rt.udpURL, "/announce") + "/" + alice.Passkey + "/announce"
	if err := ann(url, 0, 0, tracker.Started); err != nil {
		t.Fatal(err)
	}
	if err := ann(udpURL, 100, 40, tracker.None); err != nil {
		t.Fatal(err)
	}
	if err := ann(url, 150, 50, tracker.Completed); err != nil {
		t.Fatal(err)
	}
	if err := rt.stop(); err != nil {
		t.Fatal(err)
	}

	// After a restart the counts and the user's traffic are still there.
	rt = start(t, cfg, "4")
	sc, err := c.Scrape(ctx, rt.base+"/"+alice.Passkey+"/announce", [][20]byte{ih})
	if err != nil {
		t.Fatal(err)
	}
	if sc[ih].Downloaded != 1 {
		t.Errorf("downloaded after restart: %+v, want 1", sc[ih])
	}
	rt.stop()
	st, err = OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	us, err := st.Users()
	if err != nil || len(us) != 2 || us[0].Name != "alice" || us[0].Uploaded != 150 || us[0].Downloaded != 50 || us[1].Passkey != "" {
		t.Fatalf("users %+v, %v; want alice 150/50 and bob revoked", us, err)
	}
	rot, err := st.RotateUser("alice")
	if err != nil || rot.Passkey == alice.Passkey || rot.Uploaded != 150 {
		t.Errorf("rotate: %+v, %v", rot, err)
	}
}

func TestWhitelistFile(t *testing.T) {
	dir := t.TempDir()
	wl := filepath.Join(dir, "wl")
	allowed := id("allowed-torrent")
	os.WriteFile(wl, []byte("# comment\n"+hex.EncodeToString(allowed[:])+"  # ok\n\n"), 0o600)
	rt := start(t, Config{WhitelistFile: wl}, "4")
	c := testClient()
	ctx := ctx10(t)
	_, err := c.Announce(ctx, rt.httpURL, tracker.AnnounceRequest{InfoHash: allowed, PeerID: id("p"), Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Announce(ctx, rt.udpURL, tracker.AnnounceRequest{InfoHash: id("other"), PeerID: id("p"), Port: 1})
	var fe *tracker.FailureError
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "whitelist") {
		t.Errorf("unlisted torrent: %v", err)
	}
	os.WriteFile(wl, []byte("zz\n"), 0o600)
	if _, err := New(Config{WhitelistFile: wl}, nil); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad whitelist: %v", err)
	}
}

// testTorrent is a minimal valid single-file .torrent.
func testTorrent(t *testing.T, name string) []byte {
	info := map[string]any{"name": name, "length": 5, "piece length": 16384, "pieces": string(make([]byte, 20))}
	b, err := bencode.Marshal(map[string]any{"announce": "http://127.0.0.1/announce", "info": info})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIndexUploadAndMetrics(t *testing.T) {
	rt := start(t, Config{DataDir: t.TempDir(), Mode: ModeWhitelist, Title: "Test <tracker>"}, "4")
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	upload := func(pw string, data []byte) *http.Response {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("torrent", "x.torrent")
		fw.Write(data)
		mw.WriteField("description", "A <b>fine</b> file")
		mw.Close()
		req, _ := http.NewRequest("POST", rt.base+"/upload", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.SetBasicAuth("op", pw)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := upload("wrong", testTorrent(t, "a")); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d", r.StatusCode)
	}
	if r := upload(rt.srv.AdminToken(), []byte("garbage")); r.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage torrent: status %d", r.StatusCode)
	}
	if r := upload(rt.srv.AdminToken(), testTorrent(t, "holiday-photos")); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("upload: status %d", r.StatusCode)
	}
	upload(rt.srv.AdminToken(), testTorrent(t, "other-thing"))
	page := get(t, rt.base+"/?q=HOLIDAY")
	for _, want := range []string{"Test &lt;tracker&gt;", "holiday-photos", "A &lt;b&gt;fine&lt;/b&gt; file", "5 B", "/dl/"} {
		if !strings.Contains(page, want) {
			t.Errorf("index page lacks %q", want)
		}
	}
	if strings.Contains(page, "other-thing") {
		t.Error("search did not filter")
	}
	// The uploaded torrent is whitelisted and downloadable.
	ts := rt.srv.Torrents()
	var ih [20]byte
	for _, x := range ts {
		if x.Uploaded != nil && x.Uploaded.Name == "holiday-photos" {
			ih = x.InfoHash
		}
	}
	if _, err := testClient().Announce(ctx10(t), rt.httpURL, tracker.AnnounceRequest{InfoHash: ih, PeerID: id("p"), Port: 1}); err != nil {
		t.Errorf("announce of uploaded torrent: %v", err)
	}
	if got := get(t, rt.base+"/dl/"+hex.EncodeToString(ih[:])+"/x.torrent"); got != string(testTorrent(t, "holiday-photos")) {
		t.Errorf("download: %q", got)
	}
	m := get(t, rt.base+"/metrics")
	for _, want := range []string{"sower_tracker_announces_total{protocol=\"http\"} 1", "sower_tracker_peers 1", "sower_tracker_torrents 1", "process_cpu_seconds_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"mode":"whitelist","whitelist":"w.txt","interval":"10m","trusted_proxies":["10.0.0.0/8"]}`))
	if err != nil || c.Mode != ModeWhitelist || time.Duration(c.Interval) != 10*time.Minute || len(c.TrustedProxies) != 1 {
		t.Errorf("got %+v, %v", c, err)
	}
	for in, want := range map[string]string{
		`{"mode":"secret"}`:                     `mode "secret"`,
		`{"intervall":"1m"}`:                    `unknown field "intervall"`,
		`{"interval":5}`:                        "duration must be a string",
		`{"max_peers":-1}`:                      "max_peers: negative",
		`{"mode":"private"}`:                    "needs a data directory",
		`{"interval":"1m","min_interval":"2m"}`: "min_interval",
		`{} {}`:                                 "data after the JSON object",
	} {
		if _, err := ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want error containing %q", in, err, want)
		}
	}
}

// TestPrivateTrackerDefaults checks what a private tracker keeps to its
// members and operator: it tracks registered torrents only (unless told
// otherwise), refuses UDP scrapes (they cannot carry a passkey), and
// shows its torrents on the index page only to the operator; /metrics
// carries no info-hash.
func TestPrivateTrackerDefaults(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := st.AddUser("alice")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	rt := start(t, Config{DataDir: dir, Mode: ModePrivate}, "4")
	c := testClient()
	ctx := ctx10(t)
	url := rt.base + "/" + alice.Passkey + "/announce"
	unregistered := id("unregistered-torrent")
	var fe *tracker.FailureError
	_, err = c.Announce(ctx, url, tracker.AnnounceRequest{InfoHash: unregistered, PeerID: id("p"), Port: 1})
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "not tracked here") {
		t.Errorf("announce of an unregistered torrent: %v, want refused", err)
	}
	ti, err := rt.srv.AddTorrent(testTorrent(t, "members-only"), "")
	if err != nil {
		t.Fatal(err)
	}
	ihb, _ := hex.DecodeString(ti.InfoHash)
	ih := [20]byte(ihb)
	if _, err := c.Announce(ctx, url, tracker.AnnounceRequest{InfoHash: ih, PeerID: id("p"), Port: 1}); err != nil {
		t.Errorf("announce of a registered torrent: %v", err)
	}
	udpURL := strings.TrimSuffix(rt.udpURL, "/announce") + "/" + alice.Passkey + "/announce"
	if _, err := c.Scrape(ctx, udpURL, [][20]byte{ih}); !errors.As(err, &fe) || !strings.Contains(fe.Reason, "scrape over HTTP") {
		t.Errorf("UDP scrape of a private tracker: %v, want refused", err)
	}
	if sc, err := c.Scrape(ctx, url, [][20]byte{ih}); err != nil || sc[ih].Complete != 1 {
		t.Errorf("HTTP scrape with a passkey: %+v, %v", sc, err)
	}

	hc := &http.Client{Timeout: 10 * time.Second}
	page := func(path, pw string) (int, string) {
		req, _ := http.NewRequest("GET", rt.base+path, nil)
		if pw != "" {
			req.SetBasicAuth("op", pw)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/", "/?q=" + ti.InfoHash[:8], "/dl/" + ti.InfoHash + "/x.torrent"} {
		if code, body := page(p, ""); code != http.StatusUnauthorized || strings.Contains(body, ti.InfoHash) {
			t.Errorf("%s without the operator password: status %d, info-hash shown %v", p, code, strings.Contains(body, ti.InfoHash))
		}
	}
	if code, body := page("/", rt.srv.AdminToken()); code != 200 || !strings.Contains(body, ti.InfoHash) {
		t.Errorf("index for the operator: status %d, info-hash shown %v", code, strings.Contains(body, ti.InfoHash))
	}
	if _, body := page("/metrics", ""); strings.Contains(body, ti.InfoHash) || !strings.Contains(body, "sower_tracker_torrents 1") {
		t.Error("/metrics shows an info-hash, or lacks the torrent count")
	}

	// The documented opt-out tracks any torrent a member announces.
	rt.stop()
	rt = start(t, Config{DataDir: dir, Mode: ModePrivate, AllowUnregistered: true}, "4")
	url = rt.base + "/" + alice.Passkey + "/announce"
	if _, err := c.Announce(ctx, url, tracker.AnnounceRequest{InfoHash: unregistered, PeerID: id("p"), Port: 1}); err != nil {
		t.Errorf("announce of an unregistered torrent with allow_unregistered: %v", err)
	}
}
