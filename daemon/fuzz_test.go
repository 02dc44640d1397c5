package daemon

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// noNetwork refuses every fetch, so fuzzed torrent-add URLs stay local.
type noNetwork struct{}

func (noNetwork) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network disabled in this test")
}

// FuzzRPC feeds arbitrary request bodies to the Transmission RPC handler:
// every answer must be a well-formed reply, never a panic.
func FuzzRPC(f *testing.F) {
	for _, s := range []string{
		`{"method":"session-get"}`,
		`{"method":"torrent-get","arguments":{"fields":["id","name","files","peers","pieces","trackers"]},"tag":1}`,
		`{"method":"torrent-get","arguments":{"fields":["id"],"ids":["0123456789abcdef0123456789abcdef01234567",3]}}`,
		`{"method":"torrent-add","arguments":{"metainfo":"ZDQ6aW5mb2Q2Omxlbmd0aGkxZWU="}}`,
		`{"method":"torrent-add","arguments":{"filename":"magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=x"}}`,
		`{"method":"torrent-set","arguments":{"ids":[1],"files-unwanted":[0],"uploadLimit":5,"seedRatioMode":1}}`,
		`{"method":"session-set","arguments":{"speed-limit-down":10,"speed-limit-down-enabled":true,"download-queue-size":2}}`,
		`{"method":"torrent-remove","arguments":{"ids":"recently-active","delete-local-data":false}}`,
		`{"method":"queue-move-top","arguments":{"ids":[1]}}`,
		`{`, `null`, `{"method":"torrent-get","arguments":{"fields":[1]}}`,
	} {
		f.Add([]byte(s))
	}
	d, err := Open(Config{DataDir: f.TempDir(), PeerAddr: "127.0.0.1:0", NoDHT: true, HTTPClient: &http.Client{Transport: noNetwork{}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.db.close() })
	h := d.csrf(http.HandlerFunc(d.serveRPC))
	f.Fuzz(func(t *testing.T, body []byte) {
		var probe struct {
			Method string `json:"method"`
		}
		json.Unmarshal(body, &probe)
		// Moving data and reading the daemon host's files are real side
		// effects outside the test's folders.
		if strings.Contains(probe.Method, "location") || strings.Contains(string(body), "filename") {
			return
		}
		req := httptest.NewRequest(http.MethodPost, "/transmission/rpc", strings.NewReader(string(body)))
		req.Header.Set(sessionHeader, d.sessionID)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("HTTP %d", w.Code)
		}
		var r struct {
			Result *string `json:"result"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || r.Result == nil {
			t.Fatalf("reply %q is not an RPC reply: %v", w.Body.String(), err)
		}
	})
}
