package trackerserver

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Handler returns the tracker's HTTP handler: announce and scrape (also
// under /<passkey>/), the index page, uploads, downloads and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /announce", func(w http.ResponseWriter, r *http.Request) { s.handleAnnounce(w, r, "") })
	mux.HandleFunc("GET /{passkey}/announce", func(w http.ResponseWriter, r *http.Request) {
		s.handleAnnounce(w, r, r.PathValue("passkey"))
	})
	mux.HandleFunc("GET /scrape", func(w http.ResponseWriter, r *http.Request) { s.handleScrape(w, r, "") })
	mux.HandleFunc("GET /{passkey}/scrape", func(w http.ResponseWriter, r *http.Request) {
		s.handleScrape(w, r, r.PathValue("passkey"))
	})
	mux.Handle("GET /metrics", s.m.handler())
	s.webRoutes(mux)
	return mux
}

// scratch is the reusable memory of one request.
type scratch struct {
	body  []byte
	peers peerList
	query []byte // of a request that came through net/http
}

// clientIP returns the address the request came from, taking the
// configured header into account for trusted proxies.
func (s *Server) clientIP(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, errors.New("cannot tell the client's address")
	}
	var hdr string
	var has bool
	if s.cfg.RealIPHeader != "" {
		if h := r.Header.Values(s.cfg.RealIPHeader); len(h) > 0 {
			hdr, has = h[len(h)-1], true
		}
	}
	return s.clientIPFrom(ap.Addr(), hdr, has)
}

// clientIPFrom is clientIP given the connection's address and the last
// value of the real-IP header (has is false without one).
func (s *Server) clientIPFrom(remote netip.Addr, hdr string, has bool) (netip.Addr, error) {
	ip := remote.Unmap()
	if s.cfg.RealIPHeader == "" || !has {
		return ip, nil
	}
	trusted := false
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			trusted = true
			break
		}
	}
	if !trusted {
		return ip, nil
	}
	v := hdr
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	real, err := netip.ParseAddr(strings.TrimSpace(v))
	if err != nil {
		return netip.Addr{}, errors.New("bad client address in " + s.cfg.RealIPHeader + " header")
	}
	return real.Unmap(), nil
}

// authorize applies the access mode to a passkey from the path.
func (s *Server) authorize(passkey []byte) (*userAcct, error) {
	if s.cfg.Mode != ModePrivate {
		if len(passkey) != 0 {
			return nil, errors.New("not found: this tracker announces at /announce")
		}
		return nil, nil
	}
	if len(passkey) == 0 {
		return nil, errNeedPasskey
	}
	u, err := s.user(passkey)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, errUnknownPasskey
	}
	return u, nil
}

func (s *Server) handleAnnounce(w http.ResponseWriter, r *http.Request, passkey string) {
	sc := s.getScratch()
	defer s.putScratch(sc)
	ip, err := s.clientIP(r)
	sc.query = append(sc.query[:0], r.URL.RawQuery...)
	writeBencode(w, s.announceBody(sc, sc.query, []byte(passkey), ip, err))
}

// announceBody answers an HTTP announce from ip (or ipErr when the
// client's address is unusable) with a bencoded body built in sc.body.
// The query and passkey are bytes so that the announce path passes them
// from its read buffer without a copy.
func (s *Server) announceBody(sc *scratch, rawQuery, passkey []byte, ip netip.Addr, ipErr error) []byte {
	user, err := s.authorize(passkey)
	if err != nil {
		return s.failure(sc, accessKind(err), err)
	}
	p, err := parseAnnounceQuery(rawQuery)
	if err != nil {
		return s.failure(sc, "bad_request", err)
	}
	if ipErr != nil {
		return s.failure(sc, "bad_request", ipErr)
	}
	complete, incomplete, err := s.announce(&p, ip, user, wantV4|wantV6, s.clock(), &sc.peers)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("tracker: http announce", "info_hash", hex.EncodeToString(p.infoHash[:]), "peer", netip.AddrPortFrom(ip, p.port),
			"left", p.left, "event", p.event, "peers_given", len(sc.peers.v4)/v4Stride+len(sc.peers.v6)/v6Stride, "err", err)
	}
	if err != nil {
		return s.failure(sc, errKind(err), err)
	}
	s.m.announceHTTP.Inc()
	sc.body = appendAnnounceResponse(sc.body[:0], complete, incomplete, s.cfg.Interval.seconds(), s.cfg.MinInterval.seconds(), &sc.peers, p.compact, p.noPeerID)
	return sc.body
}

func (s *Server) handleScrape(w http.ResponseWriter, r *http.Request, passkey string) {
	sc := s.getScratch()
	defer s.putScratch(sc)
	sc.query = append(sc.query[:0], r.URL.RawQuery...)
	writeBencode(w, s.scrapeBody(sc, sc.query, []byte(passkey)))
}

// scrapeBody answers an HTTP scrape with a bencoded body built in sc.body.
func (s *Server) scrapeBody(sc *scratch, rawQuery, passkey []byte) []byte {
	if _, err := s.authorize(passkey); err != nil {
		return s.failure(sc, accessKind(err), err)
	}
	hashes, err := parseScrapeQuery(rawQuery, s.cfg.MaxScrapeHashes)
	if err != nil {
		return s.failure(sc, "bad_request", err)
	}
	if len(hashes) == 0 {
		if !s.cfg.FullScrape {
			return s.failure(sc, "bad_request", qerr("info_hash", "missing (this tracker does not answer full scrapes)"))
		}
		for _, t := range s.Torrents() {
			hashes = append(hashes, t.InfoHash)
		}
	}
	slices.SortFunc(hashes, func(a, b [20]byte) int { return strings.Compare(string(a[:]), string(b[:])) })
	hashes = slices.Compact(hashes)
	stats, known, err := s.scrapeMany(hashes)
	if err != nil {
		return s.failure(sc, "store", err)
	}
	s.m.scrapeHTTP.Inc()
	b := append(sc.body[:0], "d5:filesd"...)
	for i, ih := range hashes {
		st, ok := stats[i], known[i]
		if !ok {
			continue
		}
		b = append(b, "20:"...)
		b = append(b, ih[:]...)
		b = append(b, "d8:completei"...)
		b = strconv.AppendInt(b, int64(st.complete), 10)
		b = append(b, "e10:downloadedi"...)
		b = strconv.AppendUint(b, st.downloaded, 10)
		b = append(b, "e10:incompletei"...)
		b = strconv.AppendInt(b, int64(st.incomplete), 10)
		b = append(b, "ee"...)
	}
	sc.body = append(b, "ee"...)
	return sc.body
}

// accessKind sorts the errors of authorize for the errors metric: a
// refusal, or a store that could not be asked.
func accessKind(err error) string {
	if errors.Is(err, errStore) {
		return "store"
	}
	return "access"
}

// errKind sorts announce errors for the errors metric.
func errKind(err error) string {
	switch {
	case errors.Is(err, errNotListed):
		return "access"
	case errors.Is(err, errSwarmFull), errors.Is(err, errTrackerFull), errors.Is(err, errTooMany):
		return "capacity"
	case errors.Is(err, errPeerMoved):
		return "bad_request"
	case errors.Is(err, errStore):
		return "store"
	}
	return "internal"
}

// failure counts a refused request and returns its bencoded failure
// reason, built in sc.body. BEP 3 trackers answer refusals with status 200
// so that clients read the body.
func (s *Server) failure(sc *scratch, kind string, err error) []byte {
	s.m.errors.WithLabelValues(kind).Inc()
	msg := err.Error()
	b := append(sc.body[:0], "d14:failure reason"...)
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ':')
	b = append(b, msg...)
	sc.body = append(b, 'e')
	return sc.body
}

func writeBencode(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	h["Cache-Control"] = []string{"no-store"}
	w.Write(b)
}

func (d Duration) seconds() int64 { return int64(d) / 1e9 }

// appendAnnounceResponse encodes a successful announce answer. The keys
// are written in the sorted order bencoding requires.
func appendAnnounceResponse(b []byte, complete, incomplete int, interval, minInterval int64, peers *peerList, compact, noPeerID bool) []byte {
	b = append(b, "d8:completei"...)
	b = strconv.AppendInt(b, int64(complete), 10)
	b = append(b, "e10:incompletei"...)
	b = strconv.AppendInt(b, int64(incomplete), 10)
	b = append(b, "e8:intervali"...)
	b = strconv.AppendInt(b, interval, 10)
	b = append(b, "e12:min intervali"...)
	b = strconv.AppendInt(b, minInterval, 10)
	b = append(b, "e5:peers"...)
	if !compact {
		b = append(b, 'l')
		b = appendPeerDicts(b, peers.v4, v4Stride, noPeerID)
		b = appendPeerDicts(b, peers.v6, v6Stride, noPeerID)
		return append(b, "ee"...)
	}
	b = appendCompact(b, peers.v4, v4Stride)
	if len(peers.v6) > 0 {
		b = append(b, "6:peers6"...)
		b = appendCompact(b, peers.v6, v6Stride)
	}
	return append(b, 'e')
}

// appendCompact writes records as a BEP 23 (or BEP 7 peers6) string: the
// address and port part of each record, already in wire form.
func appendCompact(b, recs []byte, stride int) []byte {
	alen := stride - idLen - 8
	b = strconv.AppendInt(b, int64(len(recs)/stride*alen), 10)
	b = append(b, ':')
	for off := 0; off < len(recs); off += stride {
		b = append(b, recs[off+idLen:off+idLen+alen]...)
	}
	return b
}

// appendPeerDicts writes records as the dictionaries of BEP 3's
// non-compact peer list.
func appendPeerDicts(b, recs []byte, stride int, noPeerID bool) []byte {
	alen := stride - idLen - 8
	for off := 0; off < len(recs); off += stride {
		r := recs[off : off+stride]
		a := r[idLen : idLen+alen-2]
		var ip netip.Addr
		if len(a) == 4 {
			ip = netip.AddrFrom4([4]byte(a))
		} else {
			ip = netip.AddrFrom16([16]byte(a))
		}
		var text [64]byte
		t := ip.AppendTo(text[:0])
		b = append(b, "d2:ip"...)
		b = strconv.AppendInt(b, int64(len(t)), 10)
		b = append(b, ':')
		b = append(b, t...)
		if !noPeerID {
			b = append(b, "7:peer id20:"...)
			b = append(b, r[:idLen]...)
		}
		b = append(b, "4:porti"...)
		b = strconv.AppendInt(b, int64(binary.BigEndian.Uint16(r[idLen+alen-2:])), 10)
		b = append(b, "ee"...)
	}
	return b
}

// getScratch and putScratch recycle per-request buffers through the
// server's pool.
func (s *Server) getScratch() *scratch {
	if v := s.pool.Get(); v != nil {
		return v.(*scratch)
	}
	return &scratch{body: make([]byte, 0, 512)}
}

func (s *Server) putScratch(sc *scratch) {
	if cap(sc.body) > 64<<10 || cap(sc.peers.v4)+cap(sc.peers.v6) > 64<<10 {
		return
	}
	s.pool.Put(sc)
}
