package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sowerbt/sower/engine"
)

// Sower's own JSON API, for what the Transmission protocol has no word
// for and for the sower command line:
//
//	GET  /api/v1/torrents                 []Status
//	GET  /api/v1/torrents/{hash}          Detail (files, peers with flags, piece map)
//	POST /api/v1/torrents                 AddBody → AddResult
//	POST /api/v1/torrents/{hash}/start    (and /stop, /verify)
//	POST /api/v1/torrents/{hash}/remove   {"delete_data": bool}
//	POST /api/v1/torrents/{hash}/files    {"priorities": [0|1|2, ...]} (per layout file)
//	POST /api/v1/torrents/{hash}/super-seed  {"enabled": bool} (BEP 16)
//
// POSTs need the session token header (see csrf); errors are
// {"error": "..."} with a 4xx or 5xx status.

// AddBody is the JSON of POST /api/v1/torrents.
type AddBody struct {
	Metainfo    []byte `json:"metainfo,omitempty"` // .torrent bytes (base64 in JSON)
	URL         string `json:"url,omitempty"`
	DownloadDir string `json:"download_dir,omitempty"`
	Paused      bool   `json:"paused,omitempty"`
}

// AddReply is the JSON answer to an add.
type AddReply struct {
	ID        int    `json:"id"`
	InfoHash  string `json:"info_hash"`
	Name      string `json:"name"`
	Duplicate bool   `json:"duplicate"`
}

type apiError struct {
	Error string `json:"error"`
}

func (d *Daemon) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/torrents", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.List())
	})
	mux.HandleFunc("POST /api/v1/torrents", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		var b AddBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			apiFail(w, http.StatusBadRequest, fmt.Errorf("malformed JSON body: %w", err))
			return
		}
		res, err := d.Add(r.Context(), AddRequest{Metainfo: b.Metainfo, URL: b.URL, DownloadDir: b.DownloadDir, Paused: b.Paused})
		if err != nil {
			apiFail(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, AddReply{ID: res.ID, InfoHash: InfoHashString(res.InfoHash), Name: res.Name, Duplicate: res.Duplicate})
	})
	mux.HandleFunc("GET /api/v1/torrents/{hash}", func(w http.ResponseWriter, r *http.Request) {
		ih, ok := apiHash(w, r)
		if !ok {
			return
		}
		det, err := d.Detail(ih)
		if err != nil {
			apiFail(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, det)
	})
	mux.HandleFunc("POST /api/v1/torrents/{hash}/{action}", func(w http.ResponseWriter, r *http.Request) {
		ih, ok := apiHash(w, r)
		if !ok {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		var err error
		switch r.PathValue("action") {
		case "start":
			err = d.Start(ih)
		case "stop":
			err = d.Stop(ih)
		case "verify":
			err = d.Verify(ih)
		case "remove":
			var b struct {
				DeleteData bool `json:"delete_data"`
			}
			if derr := decodeOptional(r, &b); derr != nil {
				apiFail(w, http.StatusBadRequest, derr)
				return
			}
			err = d.Remove(ih, b.DeleteData)
		case "files":
			var b struct {
				Priorities []engine.Priority `json:"priorities"`
			}
			if derr := decodeOptional(r, &b); derr != nil {
				apiFail(w, http.StatusBadRequest, derr)
				return
			}
			if b.Priorities == nil {
				apiFail(w, http.StatusBadRequest, errors.New(`body: "priorities" missing`))
				return
			}
			err = d.Set(ih, TorrentOptions{Priorities: b.Priorities})
		case "super-seed":
			var b struct {
				Enabled *bool `json:"enabled"`
			}
			if derr := decodeOptional(r, &b); derr != nil {
				apiFail(w, http.StatusBadRequest, derr)
				return
			}
			if b.Enabled == nil {
				apiFail(w, http.StatusBadRequest, errors.New(`body: "enabled" missing`))
				return
			}
			err = d.Set(ih, TorrentOptions{SuperSeed: b.Enabled})
		default:
			apiFail(w, http.StatusNotFound, fmt.Errorf("unknown action %q", r.PathValue("action")))
			return
		}
		switch {
		case errors.Is(err, ErrNotFound):
			apiFail(w, http.StatusNotFound, err)
		case err != nil:
			apiFail(w, http.StatusBadRequest, err)
		default:
			writeJSON(w, http.StatusOK, struct{}{})
		}
	})
	return mux
}

func decodeOptional(r *http.Request, v any) error {
	err := json.NewDecoder(r.Body).Decode(v)
	if err != nil && err.Error() != "EOF" {
		return fmt.Errorf("malformed JSON body: %w", err)
	}
	return nil
}

func apiHash(w http.ResponseWriter, r *http.Request) ([20]byte, bool) {
	ih, err := parseHash(strings.ToLower(r.PathValue("hash")))
	if err != nil {
		apiFail(w, http.StatusBadRequest, err)
		return ih, false
	}
	return ih, true
}

func apiFail(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, apiError{Error: err.Error()})
}
