package daemon

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/session"
	"github.com/sowerbt/sower/tracker"
)

// The Transmission RPC protocol (rpc-spec.md of Transmission 3.00): a POST
// of {"method", "arguments", "tag"} answered by {"result", "arguments",
// "tag"}, errors travelling in "result" with HTTP 200.

type rpcRequest struct {
	Method    string          `json:"method"`
	Arguments json.RawMessage `json:"arguments"`
	Tag       json.RawMessage `json:"tag,omitempty"`
}

type rpcResponse struct {
	Result    string          `json:"result"`
	Arguments any             `json:"arguments"`
	Tag       json.RawMessage `json:"tag,omitempty"`
}

// kB is Transmission's speed unit (speed-bytes 1000 in session-get).
const kB = 1000

func (d *Daemon) serveRPC(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "405: POST a JSON request", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	var req rpcRequest
	resp := rpcResponse{Arguments: map[string]any{}}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			resp.Result = fmt.Sprintf("request larger than %d bytes", mbe.Limit)
		} else {
			resp.Result = fmt.Sprintf("malformed JSON request: %v", err)
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	resp.Tag = req.Tag
	args, err := d.call(r.Context(), req.Method, req.Arguments)
	if err != nil {
		resp.Result = err.Error()
	} else {
		resp.Result = "success"
		if raw, ok := args.(rawArgs); ok {
			// Already encoded (torrent-get): framed as is, not re-scanned.
			buf := make([]byte, 0, len(raw)+64+len(req.Tag))
			buf = append(buf, `{"result":"success","arguments":`...)
			buf = append(buf, raw...)
			if len(req.Tag) > 0 {
				buf = append(buf, `,"tag":`...)
				buf = append(buf, req.Tag...)
			}
			buf = append(buf, "}\n"...)
			w.Header().Set("Content-Type", "application/json; charset=UTF-8")
			w.Write(buf)
			return
		}
		if args != nil {
			resp.Arguments = args
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// rawArgs are RPC reply arguments already encoded as a JSON object.
type rawArgs []byte

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// call runs one RPC method.
func (d *Daemon) call(ctx context.Context, method string, raw json.RawMessage) (any, error) {
	args := map[string]json.RawMessage{}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &args); err != nil {
			return nil, fmt.Errorf("arguments: want an object: %v", err)
		}
	}
	switch method {
	case "session-get":
		return d.sessionGet(), nil
	case "session-set":
		return nil, d.sessionSet(args)
	case "session-stats":
		return d.sessionStats(), nil
	case "session-close":
		return nil, errors.New("session-close: stop the daemon with a signal instead")
	case "port-test":
		// Answering "open" without a probe from outside would be a guess.
		return nil, errors.New("port-test: not supported: Sower cannot test its peer port from outside yet")
	case "free-space":
		var p string
		if err := getArg(args, "path", &p); err != nil {
			return nil, err
		}
		return map[string]any{"path": p, "size-bytes": freeSpace(p)}, nil
	case "torrent-get":
		return d.torrentGet(args)
	case "torrent-add":
		return d.torrentAdd(ctx, args)
	case "torrent-start", "torrent-start-now":
		return nil, d.forEach(args, d.Start)
	case "torrent-stop":
		return nil, d.forEach(args, d.Stop)
	case "torrent-verify":
		return nil, d.forEach(args, d.Verify)
	case "torrent-reannounce":
		return nil, d.forEach(args, d.Reannounce)
	case "torrent-remove":
		var del bool
		if err := getArg(args, "delete-local-data", &del); err != nil {
			return nil, err
		}
		return nil, d.forEach(args, func(ih [20]byte) error { return d.Remove(ih, del) })
	case "torrent-set":
		return nil, d.torrentSet(args)
	case "torrent-set-location":
		var loc string
		var move bool
		if err := getArg(args, "location", &loc); err != nil {
			return nil, err
		}
		if loc == "" {
			return nil, errors.New("torrent-set-location: location missing")
		}
		if err := getArg(args, "move", &move); err != nil {
			return nil, err
		}
		return nil, d.forEach(args, func(ih [20]byte) error { return d.Move(ih, loc, move) })
	case "queue-move-top", "queue-move-bottom", "queue-move-up", "queue-move-down":
		return nil, d.queueMove(args, method)
	}
	return nil, fmt.Errorf("method name not recognized: %q", method)
}

// getArg decodes args[key] into v if present, naming the key on error.
func getArg(args map[string]json.RawMessage, key string, v any) error {
	raw, ok := args[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("argument %q: %v", key, err)
	}
	return nil
}

// ids resolves the "ids" argument: absent means all torrents; otherwise a
// number, a hash string, "recently-active", or a list of numbers and
// hashes.
func (d *Daemon) ids(args map[string]json.RawMessage) ([][20]byte, error) {
	raw, ok := args["ids"]
	if !ok {
		return d.allHashes(), nil
	}
	var one any
	if err := json.Unmarshal(raw, &one); err != nil {
		return nil, fmt.Errorf("argument \"ids\": %v", err)
	}
	var list []any
	switch v := one.(type) {
	case []any:
		list = v
	case string:
		if v == "recently-active" {
			return d.allHashes(), nil
		}
		list = []any{v}
	default:
		list = []any{v}
	}
	out := make([][20]byte, 0, len(list))
	for i, item := range list {
		switch v := item.(type) {
		case float64:
			ih, err := d.ByID(int(v))
			if err != nil {
				continue // Transmission ignores unknown ids
			}
			out = append(out, ih)
		case string:
			ih, err := parseHash(strings.ToLower(v))
			if err != nil {
				return nil, fmt.Errorf("argument \"ids\"[%d]: %v", i, err)
			}
			out = append(out, ih)
		default:
			return nil, fmt.Errorf("argument \"ids\"[%d]: want a number or a hash string", i)
		}
	}
	return out, nil
}

func (d *Daemon) allHashes() [][20]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([][20]byte, 0, len(d.torrents))
	for ih, t := range d.torrents {
		if !t.removing() {
			out = append(out, ih)
		}
	}
	return out
}

func (d *Daemon) forEach(args map[string]json.RawMessage, f func([20]byte) error) error {
	ids, err := d.ids(args)
	if err != nil {
		return err
	}
	var errs []error
	for _, ih := range ids {
		if err := f(ih); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *Daemon) sessionGet() map[string]any {
	s := d.Settings()
	return map[string]any{
		"version":                      "3.00 (sower)",
		"rpc-version":                  17,
		"rpc-version-minimum":          1,
		"session-id":                   d.sessionID,
		"config-dir":                   d.cfg.DataDir,
		"download-dir":                 s.DownloadDir,
		"incomplete-dir-enabled":       false,
		"peer-port":                    d.PeerPort(),
		"peer-port-random-on-start":    false,
		"port-forwarding-enabled":      false,
		"peer-limit-per-torrent":       s.PeersPerTorrent,
		"peer-limit-global":            s.PeersPerTorrent * max(1, s.DownloadQueueSize),
		"speed-limit-down":             s.SpeedLimitDown / kB,
		"speed-limit-down-enabled":     s.SpeedLimitDown > 0,
		"speed-limit-up":               s.SpeedLimitUp / kB,
		"speed-limit-up-enabled":       s.SpeedLimitUp > 0,
		"alt-speed-down":               s.AltSpeedDown / kB,
		"alt-speed-up":                 s.AltSpeedUp / kB,
		"alt-speed-enabled":            s.AltSpeedEnabled,
		"alt-speed-time-enabled":       s.AltTimeEnabled,
		"alt-speed-time-begin":         s.AltBegin,
		"alt-speed-time-end":           s.AltEnd,
		"alt-speed-time-day":           127,
		"download-queue-size":          s.DownloadQueueSize,
		"download-queue-enabled":       s.DownloadQueueSize > 0,
		"seed-queue-size":              s.SeedQueueSize,
		"seed-queue-enabled":           s.SeedQueueSize > 0,
		"seedRatioLimit":               s.SeedRatioLimit,
		"seedRatioLimited":             s.SeedRatioLimit > 0,
		"idle-seeding-limit":           s.SeedTimeMinutes,
		"idle-seeding-limit-enabled":   s.SeedTimeMinutes > 0,
		"dht-enabled":                  d.sess.DHTEnabled(),
		"pex-enabled":                  true,
		"lpd-enabled":                  false,
		"utp-enabled":                  false,
		"encryption":                   trEncryption(d.sess.Encryption()),
		"start-added-torrents":         true,
		"rename-partial-files":         false,
		"trash-original-torrent-files": false,
		"units": map[string]any{
			"speed-units": []string{"kB/s", "MB/s", "GB/s", "TB/s"}, "speed-bytes": kB,
			"size-units": []string{"kB", "MB", "GB", "TB"}, "size-bytes": kB,
			"memory-units": []string{"KiB", "MiB", "GiB", "TiB"}, "memory-bytes": 1024,
		},
	}
}

// sessionSet applies the keys Sower knows and refuses the others by name,
// so a script learns that a setting did not take effect.
func (d *Daemon) sessionSet(args map[string]json.RawMessage) error {
	return d.UpdateSettings(func(s *Settings) error {
		for key, raw := range args {
			var err error
			var b bool
			var n int64
			var f float64
			switch key {
			case "download-dir":
				err = json.Unmarshal(raw, &s.DownloadDir)
			case "speed-limit-down", "speed-limit-up", "alt-speed-down", "alt-speed-up":
				if err = json.Unmarshal(raw, &n); err == nil {
					switch key {
					case "speed-limit-down":
						s.SpeedLimitDown = n * kB
					case "speed-limit-up":
						s.SpeedLimitUp = n * kB
					case "alt-speed-down":
						s.AltSpeedDown = n * kB
					case "alt-speed-up":
						s.AltSpeedUp = n * kB
					}
				}
			case "speed-limit-down-enabled", "speed-limit-up-enabled":
				// Limits are on when non-zero: enabling keeps the value
				// given in the same call, disabling clears it.
				if err = json.Unmarshal(raw, &b); err == nil && !b {
					if key == "speed-limit-down-enabled" {
						defer func() { s.SpeedLimitDown = 0 }()
					} else {
						defer func() { s.SpeedLimitUp = 0 }()
					}
				}
			case "alt-speed-enabled":
				err = json.Unmarshal(raw, &s.AltSpeedEnabled)
			case "alt-speed-time-enabled":
				err = json.Unmarshal(raw, &s.AltTimeEnabled)
			case "alt-speed-time-begin":
				err = json.Unmarshal(raw, &s.AltBegin)
			case "alt-speed-time-end":
				err = json.Unmarshal(raw, &s.AltEnd)
			case "download-queue-size":
				err = json.Unmarshal(raw, &s.DownloadQueueSize)
			case "seed-queue-size":
				err = json.Unmarshal(raw, &s.SeedQueueSize)
			case "download-queue-enabled", "seed-queue-enabled", "seedRatioLimited", "idle-seeding-limit-enabled":
				if err = json.Unmarshal(raw, &b); err == nil && !b {
					switch key {
					case "download-queue-enabled":
						defer func() { s.DownloadQueueSize = 0 }()
					case "seed-queue-enabled":
						defer func() { s.SeedQueueSize = 0 }()
					case "seedRatioLimited":
						defer func() { s.SeedRatioLimit = 0 }()
					default:
						defer func() { s.SeedTimeMinutes = 0 }()
					}
				}
			case "seedRatioLimit":
				if err = json.Unmarshal(raw, &f); err == nil {
					s.SeedRatioLimit = f
				}
			case "idle-seeding-limit":
				err = json.Unmarshal(raw, &s.SeedTimeMinutes)
			case "peer-limit-per-torrent":
				err = json.Unmarshal(raw, &s.PeersPerTorrent)
			case "dht-enabled", "pex-enabled":
				// Fixed for the daemon's life: accepted only as they are.
				want := d.sess.DHTEnabled() || key == "pex-enabled"
				if err = json.Unmarshal(raw, &b); err == nil && b != want {
					err = fmt.Errorf("cannot be changed while the daemon runs (it is %v; restart it with or without --no-dht)", want)
				}
			case "encryption":
				var name string
				if err = json.Unmarshal(raw, &name); err == nil {
					var e session.Encryption
					if e, err = parseTrEncryption(name); err == nil {
						s.Encryption = e.String()
					}
				}
			case "peer-limit-global", "lpd-enabled", "utp-enabled",
				"start-added-torrents", "alt-speed-time-day", "port-forwarding-enabled":
				// Accepted for compatibility; Sower has no such switch.
			default:
				return fmt.Errorf("session-set: argument %q not supported", key)
			}
			if err != nil {
				return fmt.Errorf("session-set: argument %q: %v", key, err)
			}
		}
		return nil
	})
}

func (d *Daemon) sessionStats() map[string]any {
	list := d.List()
	var down, up float64
	var dl, ul int64
	active := 0
	for _, s := range list {
		down += s.DownloadRate
		up += s.UploadRate
		dl += s.Downloaded
		ul += s.Uploaded
		if s.State == StateDownloading.String() || s.State == StateSeeding.String() {
			active++
		}
	}
	stats := map[string]any{"downloadedBytes": dl, "uploadedBytes": ul, "filesAdded": len(list), "sessionCount": 1, "secondsActive": 0}
	return map[string]any{
		"torrentCount": len(list), "activeTorrentCount": active, "pausedTorrentCount": len(list) - active,
		"downloadSpeed": int64(down), "uploadSpeed": int64(up),
		"cumulative-stats": stats, "current-stats": stats,
	}
}

// trEncryption is Transmission's name of an encryption policy. Sower has
// no plaintext-first mode that accepts encryption, Transmission's
// "tolerated": off, plaintext in and out, is the nearest and is named so.
func trEncryption(e session.Encryption) string {
	switch e {
	case session.EncryptionRequire:
		return "required"
	case session.EncryptionOff:
		return "tolerated"
	}
	return "preferred"
}

// parseTrEncryption reads Transmission's encryption names (see
// trEncryption), and Sower's own.
func parseTrEncryption(name string) (session.Encryption, error) {
	switch name {
	case "required":
		return session.EncryptionRequire, nil
	case "preferred":
		return session.EncryptionPrefer, nil
	case "tolerated":
		return session.EncryptionOff, nil
	}
	e, err := session.ParseEncryption(name)
	if err != nil {
		return 0, fmt.Errorf("%q: want required, preferred or tolerated", name)
	}
	return e, nil
}

// trStatus maps a State to Transmission's status numbers.
func trStatus(s Status) int {
	switch s.State {
	case "stopped", "error":
		return 0
	case "checking":
		return 2
	case "queued":
		if s.HasMeta && s.Left == 0 {
			return 5
		}
		return 3
	case "seeding":
		return 6
	}
	return 4 // downloading, waiting for metadata
}

func (d *Daemon) torrentGet(args map[string]json.RawMessage) (any, error) {
	var fields []string
	if err := getArg(args, "fields", &fields); err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, errors.New("torrent-get: argument \"fields\" missing")
	}
	needDetail := false
	for _, f := range fields {
		switch f {
		case "files", "fileStats", "priorities", "wanted", "peers", "pieces", "trackers", "trackerStats", "peersFrom", "webseeds":
			needDetail = true
		}
	}
	if _, ok := args["ids"]; !ok && !needDetail {
		return d.listAll(fields)
	}
	var list []Status
	if _, ok := args["ids"]; ok {
		ids, err := d.ids(args)
		if err != nil {
			return nil, err
		}
		for _, ih := range ids {
			if s, err := d.Get(ih); err == nil {
				list = append(list, s)
			}
		}
	} else {
		list = d.List()
	}
	// The reply is written field by field in the order asked, with
	// strconv rather than encoding/json for the scalars, into one buffer
	// sized from the last reply: listing a thousand torrents is the hot
	// path of every poller.
	buf := make([]byte, 0, max(int(d.lastListSize.Load()), 64*len(list)*len(fields)/4+64))
	buf = append(buf, `{"torrents":[`...)
	for i, s := range list {
		var det *Detail
		if needDetail {
			ih, _ := parseHash(s.InfoHash)
			if dd, err := d.Detail(ih); err == nil {
				det = &dd
			}
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '{')
		first := true
		for _, f := range fields {
			v, ok := trField(f, s, det)
			if !ok {
				continue
			}
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = appendJSONString(buf, f)
			buf = append(buf, ':')
			var err error
			if buf, err = appendJSONValue(buf, v); err != nil {
				return nil, fmt.Errorf("torrent-get: field %q: %v", f, err)
			}
		}
		buf = append(buf, '}')
	}
	buf = append(buf, `],"removed":[]}`...)
	d.lastListSize.Store(int64(len(buf)))
	return rawArgs(buf), nil
}

// listAll answers a torrent-get of every torrent without per-file or
// per-peer fields, the request pollers repeat: each torrent's status is
// computed and written straight into the reply under one hold of the
// lock, so a list of a thousand makes one buffer and little else.
func (d *Daemon) listAll(fields []string) (any, error) {
	now := time.Now()
	buf := make([]byte, 0, max(int(d.lastListSize.Load()), 4096))
	buf = append(buf, `{"torrents":[`...)
	d.mu.Lock()
	ts := make([]*torrent, 0, len(d.torrents))
	for _, t := range d.torrents {
		if !t.removing() {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(a, b *torrent) int { return a.rec.ID - b.rec.ID })
	for i, t := range ts {
		if i > 0 {
			buf = append(buf, ',')
		}
		st := d.statusLocked(t, now)
		var err error
		if buf, err = appendTorrent(buf, fields, &st); err != nil {
			d.mu.Unlock()
			return nil, err
		}
	}
	d.mu.Unlock()
	buf = append(buf, `],"removed":[]}`...)
	d.lastListSize.Store(int64(len(buf)))
	return rawArgs(buf), nil
}

// appendTorrent writes one torrent's requested fields as a JSON object.
func appendTorrent(buf []byte, fields []string, s *Status) ([]byte, error) {
	buf = append(buf, '{')
	first := true
	for _, f := range fields {
		mark := len(buf)
		if !first {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, f)
		buf = append(buf, ':')
		var ok bool
		if buf, ok = appendScalarField(buf, f, s); !ok {
			v, known := trField(f, *s, nil)
			if !known {
				buf = buf[:mark] // unknown fields are left out
				continue
			}
			var err error
			if buf, err = appendJSONValue(buf, v); err != nil {
				return nil, fmt.Errorf("torrent-get: field %q: %v", f, err)
			}
		}
		first = false
	}
	return append(buf, '}'), nil
}

// appendScalarField writes the fields of a list poll without boxing them
// in interfaces; the values are trField's (a test holds them equal). It
// reports false for other fields.
func appendScalarField(buf []byte, f string, s *Status) ([]byte, bool) {
	i := func(v int64) ([]byte, bool) { return strconv.AppendInt(buf, v, 10), true }
	switch f {
	case "id":
		return i(int64(s.ID))
	case "name":
		return appendJSONString(buf, s.Name), true
	case "hashString":
		return appendJSONString(buf, s.InfoHash), true
	case "status":
		return i(int64(trStatus(*s)))
	case "error":
		if s.Error != "" && s.State == "error" {
			return i(3)
		}
		return i(0)
	case "errorString":
		return appendJSONString(buf, s.Error), true
	case "rateDownload":
		return i(int64(s.DownloadRate))
	case "rateUpload":
		return i(int64(s.UploadRate))
	case "eta":
		if s.ETA < 0 || s.Left == 0 {
			return i(-1)
		}
		return i(s.ETA)
	case "totalSize":
		return i(s.TotalSize)
	case "sizeWhenDone":
		return i(s.Wanted)
	case "leftUntilDone":
		return i(s.Left)
	case "haveValid":
		return i(s.Completed)
	case "downloadedEver":
		return i(s.Downloaded)
	case "uploadedEver":
		return i(s.Uploaded)
	case "peersConnected":
		return i(int64(s.Peers))
	case "peersSendingToUs":
		if s.State == "downloading" {
			return i(int64(s.Seeds))
		}
		return i(0)
	case "peersGettingFromUs":
		return i(int64(s.Peers - s.Seeds))
	case "queuePosition":
		return i(int64(s.Queue))
	case "isFinished":
		return strconv.AppendBool(buf, s.Paused && s.HasMeta && s.Left == 0), true
	}
	return buf, false
}

// appendJSONValue appends v as JSON: the scalar types of torrent-get by
// hand, anything else through encoding/json.
func appendJSONValue(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case bool:
		return strconv.AppendBool(buf, x), nil
	case string:
		return appendJSONString(buf, x), nil
	case float64:
		// encoding/json's form for the common range; the rest (huge,
		// tiny, NaN) goes through it.
		if a := math.Abs(x); a == 0 || (a >= 1e-6 && a < 1e21) {
			return strconv.AppendFloat(buf, x, 'f', -1, 64), nil
		}
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return buf, err
	}
	return append(buf, enc...), nil
}

// appendJSONString appends s quoted; strings that need escaping (quotes,
// control bytes, non-ASCII, HTML characters) go through encoding/json so
// the output matches it byte for byte.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s)
			return append(buf, enc...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// trField computes one torrent-get field; unknown fields are left out, as
// Transmission does.
func trField(f string, s Status, det *Detail) (any, bool) {
	switch f {
	case "id":
		return s.ID, true
	case "name":
		return s.Name, true
	case "hashString":
		return s.InfoHash, true
	case "status":
		return trStatus(s), true
	case "error":
		if s.Error != "" && s.State == "error" {
			return 3, true
		}
		return 0, true
	case "errorString":
		return s.Error, true
	case "percentDone":
		return s.Progress, true
	case "recheckProgress":
		return s.CheckDone, true
	case "metadataPercentComplete":
		if s.HasMeta {
			return 1, true
		}
		return 0, true
	case "rateDownload":
		return int64(s.DownloadRate), true
	case "rateUpload":
		return int64(s.UploadRate), true
	case "uploadRatio":
		if !s.HasMeta {
			return -1, true
		}
		return s.Ratio, true
	case "eta":
		if s.ETA < 0 || s.Left == 0 {
			return -1, true
		}
		return s.ETA, true
	case "totalSize":
		return s.TotalSize, true
	case "sizeWhenDone":
		return s.Wanted, true
	case "leftUntilDone":
		return s.Left, true
	case "haveValid":
		return s.Completed, true
	case "haveUnchecked", "corruptEver", "desiredAvailable", "manualAnnounceTime", "webseedsSendingToUs", "bandwidthPriority":
		if f == "corruptEver" {
			return s.Wasted, true
		}
		return 0, true
	case "downloadedEver":
		return s.Downloaded, true
	case "uploadedEver":
		return s.Uploaded, true
	case "peersConnected":
		return s.Peers, true
	case "peersSendingToUs":
		if s.State == "downloading" {
			return s.Seeds, true
		}
		return 0, true
	case "peersGettingFromUs":
		return s.Peers - s.Seeds, true
	case "addedDate":
		return s.AddedAt.Unix(), true
	case "doneDate":
		if s.DoneAt.IsZero() {
			return 0, true
		}
		return s.DoneAt.Unix(), true
	case "activityDate", "startDate":
		return time.Now().Unix(), true
	case "dateCreated":
		return 0, true
	case "downloadDir":
		return s.Dir, true
	case "isFinished":
		return s.Paused && s.HasMeta && s.Left == 0, true
	case "isPrivate":
		return s.Private, true
	case "isStalled":
		return false, true
	case "queuePosition":
		return s.Queue, true
	case "pieceCount":
		return s.PieceCount, true
	case "pieceSize":
		return s.PieceSize, true
	case "magnetLink":
		return s.Magnet, true
	case "secondsSeeding":
		return s.SeedSecs, true
	case "seedRatioLimit":
		return s.RatioLimit, true
	case "seedRatioMode":
		switch {
		case s.RatioLimit > 0:
			return 1, true
		case s.RatioLimit < 0:
			return 2, true
		}
		return 0, true
	case "uploadLimit":
		return s.UploadLimit / kB, true
	case "uploadLimited":
		return s.UploadLimit > 0, true
	case "downloadLimit":
		return s.DownloadLimit / kB, true
	case "downloadLimited":
		return s.DownloadLimit > 0, true
	case "honorsSessionLimits":
		return true, true
	case "peer-limit":
		return 50, true
	case "comment", "creator":
		return "", true
	case "labels":
		return []string{}, true
	}
	if det == nil {
		return nil, false
	}
	switch f {
	case "files":
		out := make([]map[string]any, len(det.Files))
		for i, fs := range det.Files {
			out[i] = map[string]any{"name": fs.Path, "length": fs.Length, "bytesCompleted": fs.Completed}
		}
		return out, true
	case "fileStats":
		out := make([]map[string]any, len(det.Files))
		for i, fs := range det.Files {
			out[i] = map[string]any{"bytesCompleted": fs.Completed, "wanted": fs.Priority != engine.Skip, "priority": trPriority(fs.Priority)}
		}
		return out, true
	case "priorities":
		out := make([]int, len(det.Files))
		for i, fs := range det.Files {
			out[i] = trPriority(fs.Priority)
		}
		return out, true
	case "wanted":
		out := make([]int, len(det.Files))
		for i, fs := range det.Files {
			if fs.Priority != engine.Skip {
				out[i] = 1
			}
		}
		return out, true
	case "pieces":
		return base64.StdEncoding.EncodeToString(det.Have), true
	case "peers":
		out := make([]map[string]any, len(det.Peerlist))
		for i, p := range det.Peerlist {
			out[i] = map[string]any{
				"address": p.Addr.Addr().String(), "port": p.Addr.Port(), "clientName": p.Client,
				"flagStr": p.Flags, "progress": p.Progress, "rateToClient": int64(p.DownloadRate), "rateToPeer": int64(p.UploadRate),
				"isIncoming": strings.Contains(p.Flags, "I"), "isEncrypted": p.Encryption == engine.EncryptionRC4, "isUTP": false,
				"clientIsChoked": !strings.Contains(p.Flags, "U"), "peerIsChoked": !strings.Contains(p.Flags, "D"),
				"clientIsInterested": strings.ContainsAny(p.Flags, "Dd"), "peerIsInterested": strings.ContainsAny(p.Flags, "Uu"),
				"isDownloadingFrom": strings.Contains(p.Flags, "D"), "isUploadingTo": strings.Contains(p.Flags, "U"),
			}
		}
		return out, true
	case "trackers":
		var out []map[string]any
		id := 0
		for tier, urls := range det.Trackers {
			for _, u := range urls {
				out = append(out, map[string]any{"announce": u, "id": id, "tier": tier, "scrape": scrapeURL(u)})
				id++
			}
		}
		if out == nil {
			out = []map[string]any{}
		}
		return out, true
	case "trackerStats":
		out := make([]map[string]any, 0, len(det.TrackerStats))
		for id, ts := range det.TrackerStats {
			out = append(out, trTrackerStat(id, ts, det.NextAnnounce))
		}
		return out, true
	case "peersFrom":
		return map[string]int{"fromTracker": len(det.Peerlist)}, true
	case "webseeds":
		return []string{}, true
	}
	return nil, false
}

func trPriority(p engine.Priority) int {
	if p == engine.High {
		return 1
	}
	return 0
}

func (d *Daemon) torrentAdd(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	var (
		filename, meta, dir string
		paused              bool
	)
	for k, v := range map[string]any{"filename": &filename, "metainfo": &meta, "download-dir": &dir, "paused": &paused} {
		if err := getArg(args, k, v); err != nil {
			return nil, err
		}
	}
	req := AddRequest{DownloadDir: dir, Paused: paused}
	switch {
	case meta != "":
		if base64.StdEncoding.DecodedLen(len(meta)) > metainfo.MaxFileSize+3 {
			return nil, fmt.Errorf("torrent-add: metainfo larger than the %d-byte limit", metainfo.MaxFileSize)
		}
		data, err := base64.StdEncoding.DecodeString(meta)
		if err != nil {
			return nil, fmt.Errorf("torrent-add: argument \"metainfo\": bad base64: %v", err)
		}
		req.Metainfo = data
	case strings.Contains(filename, ":"):
		req.URL = filename
	case filename != "":
		// Transmission reads a path on the daemon's host.
		data, err := readLocalTorrent(filename)
		if err != nil {
			d.log.Warn("torrent-add: refused a local file", "err", err)
			return nil, errLocalTorrent
		}
		req.Metainfo = data
	default:
		return nil, errors.New("torrent-add: give \"filename\" or \"metainfo\"")
	}
	prio, err := filePrioArgs(args, 0, nil)
	if err != nil {
		return nil, err
	}
	res, err := d.Add(ctx, req)
	if err != nil && filename != "" && req.URL == "" && errors.Is(err, errInvalidTorrent) {
		d.log.Warn("torrent-add: refused a local file", "path", filename, "err", err)
		return nil, errLocalTorrent // the file's content is not the caller's to learn
	}
	if err != nil {
		return nil, err
	}
	if prio != nil && !res.Duplicate {
		if err := d.applyFileArgs(res.InfoHash, args); err != nil {
			return nil, err
		}
	}
	key := "torrent-added"
	if res.Duplicate {
		key = "torrent-duplicate"
	}
	return map[string]any{key: map[string]any{"id": res.ID, "name": res.Name, "hashString": InfoHashString(res.InfoHash)}}, nil
}

// filePrioArgs applies files-wanted, files-unwanted and priority-* (lists
// of file indices) to cur, a per-file list of n priorities; it returns
// nil when none of those arguments is present.
func filePrioArgs(args map[string]json.RawMessage, n int, cur []engine.Priority) ([]engine.Priority, error) {
	keys := []string{"files-wanted", "files-unwanted", "priority-high", "priority-normal", "priority-low"}
	present := false
	for _, k := range keys {
		if _, ok := args[k]; ok {
			present = true
		}
	}
	if !present {
		return nil, nil
	}
	if cur == nil {
		return []engine.Priority{}, nil // the caller asks again with the file count
	}
	out := append([]engine.Priority(nil), cur...)
	for _, k := range keys {
		var idx []int
		if err := getArg(args, k, &idx); err != nil {
			return nil, err
		}
		for _, i := range idx {
			if i < 0 || i >= n {
				return nil, fmt.Errorf("argument %q: file index %d out of range (torrent has %d files)", k, i, n)
			}
			switch k {
			case "files-wanted":
				if out[i] == engine.Skip {
					out[i] = engine.Normal
				}
			case "files-unwanted":
				out[i] = engine.Skip
			case "priority-high":
				if out[i] != engine.Skip {
					out[i] = engine.High
				}
			default:
				if out[i] != engine.Skip {
					out[i] = engine.Normal
				}
			}
		}
	}
	return out, nil
}

// applyFileArgs maps Transmission's file indices (real files only) onto
// the layout's files (which include BEP 47 padding) and sets priorities.
func (d *Daemon) applyFileArgs(ih [20]byte, args map[string]json.RawMessage) error {
	if p, _ := filePrioArgs(args, 0, nil); p == nil {
		return nil // no file arguments
	}
	d.mu.Lock()
	t, err := d.lookup(ih)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	if t.parked() {
		if err := d.unparkLocked(t); err != nil {
			d.mu.Unlock()
			return err
		}
		d.announceStopLocked(t)
	}
	if t.layout == nil {
		d.mu.Unlock()
		return errors.New("file selection needs metadata, which this torrent does not have yet")
	}
	all := t.priorities()
	var real []int
	for i := range t.layout.NumFiles() {
		if !t.layout.File(i).Padding {
			real = append(real, i)
		}
	}
	d.mu.Unlock()
	cur := make([]engine.Priority, len(real))
	for i, li := range real {
		cur[i] = all[li]
	}
	next, err := filePrioArgs(args, len(real), cur)
	if err != nil || next == nil {
		return err
	}
	for i, li := range real {
		all[li] = next[i]
	}
	return d.Set(ih, TorrentOptions{Priorities: all})
}

func (d *Daemon) torrentSet(args map[string]json.RawMessage) error {
	var o TorrentOptions
	var (
		upL, downL         int64
		upOn, downOn       *bool
		ratio              float64
		ratioMode, idleMin int
		queue              int
	)
	if err := getArg(args, "uploadLimited", &upOn); err != nil {
		return err
	}
	if err := getArg(args, "downloadLimited", &downOn); err != nil {
		return err
	}
	if _, ok := args["uploadLimit"]; ok {
		if err := getArg(args, "uploadLimit", &upL); err != nil {
			return err
		}
		v := upL * kB
		o.UploadLimit = &v
	}
	if _, ok := args["downloadLimit"]; ok {
		if err := getArg(args, "downloadLimit", &downL); err != nil {
			return err
		}
		v := downL * kB
		o.DownloadLimit = &v
	}
	if upOn != nil && !*upOn {
		zero := int64(0)
		o.UploadLimit = &zero
	}
	if downOn != nil && !*downOn {
		zero := int64(0)
		o.DownloadLimit = &zero
	}
	if _, ok := args["seedRatioLimit"]; ok {
		if err := getArg(args, "seedRatioLimit", &ratio); err != nil {
			return err
		}
		o.RatioLimit = &ratio
	}
	if _, ok := args["seedRatioMode"]; ok {
		if err := getArg(args, "seedRatioMode", &ratioMode); err != nil {
			return err
		}
		var r float64
		switch ratioMode {
		case 0: // session default
		case 1:
			r = ratio
		case 2:
			r = -1
		default:
			return fmt.Errorf("argument \"seedRatioMode\": %d not in 0..2", ratioMode)
		}
		o.RatioLimit = &r
	}
	if _, ok := args["seedIdleLimit"]; ok {
		if err := getArg(args, "seedIdleLimit", &idleMin); err != nil {
			return err
		}
		o.SeedMinutes = &idleMin
	}
	if _, ok := args["queuePosition"]; ok {
		if err := getArg(args, "queuePosition", &queue); err != nil {
			return err
		}
		o.Queue = &queue
	}
	if _, ok := args["location"]; ok {
		return errors.New("torrent-set: use torrent-set-location to move data")
	}
	return d.forEach(args, func(ih [20]byte) error {
		if err := d.Set(ih, o); err != nil {
			return err
		}
		return d.applyFileArgs(ih, args)
	})
}

func (d *Daemon) queueMove(args map[string]json.RawMessage, method string) error {
	ids, err := d.ids(args)
	if err != nil {
		return err
	}
	list := d.List()
	lo, hi := 0, 0
	for _, s := range list {
		lo, hi = min(lo, s.Queue), max(hi, s.Queue)
	}
	for _, ih := range ids {
		s, err := d.Get(ih)
		if err != nil {
			continue
		}
		q := s.Queue
		switch method {
		case "queue-move-top":
			q = lo - 1
		case "queue-move-bottom":
			q = hi + 1
		case "queue-move-up":
			q--
		default:
			q++
		}
		if err := d.Set(ih, TorrentOptions{Queue: &q}); err != nil {
			return err
		}
	}
	return nil
}

// scrapeURL is a tracker's scrape URL, "" when it has none.
func scrapeURL(announce string) string {
	u, err := tracker.ScrapeURL(announce)
	if err != nil {
		return ""
	}
	return u
}

// Transmission's tracker_state values (rpc-spec.md).
const (
	trackerInactive = 0
	trackerWaiting  = 1
)

// trTrackerStat is one entry of Transmission's trackerStats.
func trTrackerStat(id int, ts tracker.Status, next time.Time) map[string]any {
	host := ts.URL
	if u, err := url.Parse(ts.URL); err == nil && u.Host != "" {
		host = u.Scheme + "://" + u.Host
	}
	unix := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.Unix()
	}
	state := trackerInactive
	if !next.IsZero() {
		state = trackerWaiting
	}
	return map[string]any{
		"id": id, "tier": ts.Tier, "announce": ts.URL, "scrape": scrapeURL(ts.URL), "host": host,
		"isBackup":              false,
		"announceState":         state,
		"hasAnnounced":          !ts.LastAnnounce.IsZero(),
		"lastAnnounceTime":      unix(ts.LastAnnounce),
		"lastAnnounceStartTime": unix(ts.LastAnnounce),
		"lastAnnounceSucceeded": ts.LastOK,
		"lastAnnounceResult":    ts.LastResult,
		"lastAnnounceTimedOut":  false,
		"lastAnnouncePeerCount": ts.Peers,
		"nextAnnounceTime":      unix(next),
		"scrapeState":           trackerInactive,
		"hasScraped":            !ts.LastScrape.IsZero(),
		"lastScrapeTime":        unix(ts.LastScrape),
		"lastScrapeStartTime":   unix(ts.LastScrape),
		"lastScrapeSucceeded":   ts.ScrapeResult == "Success",
		"lastScrapeResult":      ts.ScrapeResult,
		"lastScrapeTimedOut":    false,
		"nextScrapeTime":        0,
		"seederCount":           ts.Seeders,
		"leecherCount":          ts.Leechers,
		"downloadCount":         ts.Downloaded,
	}
}
