package tracker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// UDP tracker protocol constants (BEP 15, 41).
const (
	udpProtocolID = 0x41727101980

	actionConnect  = 0
	actionAnnounce = 1
	actionScrape   = 2
	actionError    = 3

	// A connection ID may be used for one minute after it was received.
	udpConnIDLifetime = time.Minute
	// BEP 15: "Up to about 74 torrents can be scraped at once."
	udpMaxScrape = 74
	// The retransmission exponent stops growing at 8 (15 * 2^8 s).
	udpMaxBackoffExp = 8
	// BEP 41 URLData is sent in chunks of at most 255 bytes; eight chunks
	// is far beyond any real passkey and keeps the packet small.
	udpMaxURLData = 8 * 255
	// Largest possible UDP payload; reads never need more.
	udpMaxPacket = 65536

	udpAnnounceRequestLen = 98
	udpAnnounceHeaderLen  = 20
	udpScrapeEntryLen     = 12
)

// udpConnID is a connection ID from a connect response, valid for
// udpConnIDLifetime after got.
type udpConnID struct {
	id  uint64
	got time.Time
}

// udpResponse is any decoded UDP tracker packet; which fields are set
// depends on Action.
type udpResponse struct {
	Action        uint32
	TransactionID uint32

	ConnectionID uint64 // connect

	Interval          time.Duration // announce
	Leechers, Seeders int           // announce
	Peers             []Peer        // announce
	Scrape            []ScrapeStats // scrape, in request order
	Message           string        // error
}

// errUDPTimeout marks one unanswered request; the caller retransmits.
var errUDPTimeout = errors.New("no answer before retransmission timeout")

// parseUDPResponse decodes a tracker-to-client packet. ipv6 selects the
// 18-byte peer stride of announce responses, which BEP 15 ties to the
// address family the packet came from. Trailing bytes that do not form a
// whole entry are an error rather than silently dropped data.
func parseUDPResponse(pkt []byte, ipv6 bool, log *slog.Logger) (*udpResponse, error) {
	if len(pkt) < 8 {
		return nil, fmt.Errorf("udp packet of %d bytes is shorter than the 8-byte header", len(pkt))
	}
	r := &udpResponse{
		Action:        binary.BigEndian.Uint32(pkt[0:]),
		TransactionID: binary.BigEndian.Uint32(pkt[4:]),
	}
	switch r.Action {
	case actionConnect:
		if len(pkt) < 16 {
			return nil, fmt.Errorf("udp connect response of %d bytes, want at least 16", len(pkt))
		}
		r.ConnectionID = binary.BigEndian.Uint64(pkt[8:])
	case actionAnnounce:
		if len(pkt) < udpAnnounceHeaderLen {
			return nil, fmt.Errorf("udp announce response of %d bytes, want at least %d", len(pkt), udpAnnounceHeaderLen)
		}
		r.Interval = time.Duration(binary.BigEndian.Uint32(pkt[8:])) * time.Second
		r.Leechers = clampInt(binary.BigEndian.Uint32(pkt[12:]))
		r.Seeders = clampInt(binary.BigEndian.Uint32(pkt[16:]))
		stride, field := compactV4, "udp announce peers at offset 20"
		if ipv6 {
			stride, field = compactV6, "udp announce IPv6 peers at offset 20"
		}
		var err error
		if r.Peers, err = parseCompactPeers(nil, pkt[udpAnnounceHeaderLen:], stride, field, log); err != nil {
			return nil, err
		}
	case actionScrape:
		body := pkt[8:]
		if len(body)%udpScrapeEntryLen != 0 {
			return nil, fmt.Errorf("udp scrape response: %d bytes from offset 8 are not a multiple of %d",
				len(body), udpScrapeEntryLen)
		}
		r.Scrape = make([]ScrapeStats, 0, len(body)/udpScrapeEntryLen)
		for off := 0; off < len(body); off += udpScrapeEntryLen {
			r.Scrape = append(r.Scrape, ScrapeStats{
				Complete:   clampInt(binary.BigEndian.Uint32(body[off:])),
				Downloaded: clampInt(binary.BigEndian.Uint32(body[off+4:])),
				Incomplete: clampInt(binary.BigEndian.Uint32(body[off+8:])),
			})
		}
	case actionError:
		// Some trackers NUL-terminate the message.
		r.Message = strings.TrimRight(string(pkt[8:]), "\x00")
	default:
		return nil, fmt.Errorf("udp packet has unknown action %d", r.Action)
	}
	return r, nil
}

// clampInt converts a wire counter to int without wrapping on 32-bit
// platforms.
func clampInt(v uint32) int {
	return int(min(uint64(v), uint64(maxInt)))
}

const maxInt = int(^uint(0) >> 1)

func udpConnectRequest(tid uint32) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[0:], udpProtocolID)
	binary.BigEndian.PutUint32(b[8:], actionConnect)
	binary.BigEndian.PutUint32(b[12:], tid)
	return b
}

// udpEvent maps an Event to BEP 15's numbering, which differs from the
// order of the HTTP names.
func udpEvent(e Event) uint32 {
	switch e {
	case Completed:
		return 1
	case Started:
		return 2
	case Stopped:
		return 3
	}
	return 0
}

// udpAnnounceRequest builds an announce packet followed by the BEP 41
// URLData option carrying urlData (omitted when empty).
func udpAnnounceRequest(connID uint64, tid uint32, req AnnounceRequest, urlData string) []byte {
	b := make([]byte, udpAnnounceRequestLen, udpAnnounceRequestLen+len(urlData)+2*(len(urlData)/255+1))
	binary.BigEndian.PutUint64(b[0:], connID)
	binary.BigEndian.PutUint32(b[8:], actionAnnounce)
	binary.BigEndian.PutUint32(b[12:], tid)
	copy(b[16:36], req.InfoHash[:])
	copy(b[36:56], req.PeerID[:])
	binary.BigEndian.PutUint64(b[56:], uint64(max(req.Downloaded, 0)))
	binary.BigEndian.PutUint64(b[64:], uint64(max(req.Left, 0)))
	binary.BigEndian.PutUint64(b[72:], uint64(max(req.Uploaded, 0)))
	binary.BigEndian.PutUint32(b[80:], udpEvent(req.Event))
	// Offset 84, the IP address, stays 0: the tracker uses the source.
	binary.BigEndian.PutUint32(b[88:], req.Key)
	numWant := int32(-1)
	if req.NumWant >= 0 {
		numWant = int32(min(req.NumWant, 1<<31-1))
	}
	binary.BigEndian.PutUint32(b[92:], uint32(numWant))
	binary.BigEndian.PutUint16(b[96:], req.Port)
	for rest := urlData; rest != ""; {
		n := min(len(rest), 255)
		b = append(b, 2, byte(n))
		b = append(b, rest[:n]...)
		rest = rest[n:]
	}
	return b
}

func udpScrapeRequest(connID uint64, tid uint32, hashes [][20]byte) []byte {
	b := make([]byte, 16, 16+20*len(hashes))
	binary.BigEndian.PutUint64(b[0:], connID)
	binary.BigEndian.PutUint32(b[8:], actionScrape)
	binary.BigEndian.PutUint32(b[12:], tid)
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

// udpURLData is the PATH and QUERY part of a UDP tracker URL that BEP 41
// passes to the tracker, for passkeys and similar.
func udpURLData(u *url.URL) (string, error) {
	data := u.EscapedPath()
	if u.RawQuery != "" {
		data += "?" + u.RawQuery
	}
	if len(data) > udpMaxURLData {
		return "", fmt.Errorf("tracker: udp URL path and query are %d bytes, limit %d", len(data), udpMaxURLData)
	}
	return data, nil
}

func (c *Client) udpAnnounce(ctx context.Context, u *url.URL, req AnnounceRequest) (*AnnounceResponse, error) {
	data, err := udpURLData(u)
	if err != nil {
		return nil, err
	}
	resp, err := c.udpDo(ctx, u, actionAnnounce, func(id uint64, tid uint32) []byte {
		return udpAnnounceRequest(id, tid, req, data)
	})
	if err != nil {
		return nil, err
	}
	return &AnnounceResponse{
		Interval:   resp.Interval,
		Complete:   resp.Seeders,
		Incomplete: resp.Leechers,
		Peers:      dedupePeers(resp.Peers),
	}, nil
}

func (c *Client) udpScrape(ctx context.Context, u *url.URL, hashes [][20]byte) (map[[20]byte]ScrapeStats, error) {
	out := make(map[[20]byte]ScrapeStats, len(hashes))
	for len(hashes) > 0 {
		chunk := hashes[:min(len(hashes), udpMaxScrape)]
		hashes = hashes[len(chunk):]
		resp, err := c.udpDo(ctx, u, actionScrape, func(id uint64, tid uint32) []byte {
			return udpScrapeRequest(id, tid, chunk)
		})
		if err != nil {
			return nil, err
		}
		if len(resp.Scrape) < len(chunk) {
			return nil, fmt.Errorf("tracker: udp %s: scrape response has %d entries for %d torrents",
				u.Host, len(resp.Scrape), len(chunk))
		}
		for i, h := range chunk {
			out[h] = resp.Scrape[i]
		}
	}
	return out, nil
}

// udpDo performs one request/response exchange with the tracker at u,
// obtaining or reusing a connection ID first. build makes the request for
// a connection ID and transaction ID. Unanswered packets are retransmitted
// after base*2^n; the connect and the request share the attempt budget, as
// in the BEP 15 timeline.
func (c *Client) udpDo(ctx context.Context, u *url.URL, action uint32, build func(connID uint64, tid uint32) []byte) (*udpResponse, error) {
	if u.Port() == "" {
		return nil, fmt.Errorf("tracker: udp tracker URL %q has no port", u.Redacted())
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("tracker: udp %s: %w", u.Host, err)
	}
	defer conn.Close()
	// Closing the socket is the only way to interrupt a blocked Read.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	remote := conn.RemoteAddr().(*net.UDPAddr).AddrPort()
	ipv6 := !remote.Addr().Unmap().Is4()
	key := remote.String()
	base := c.UDPRetransmit
	if base <= 0 {
		base = DefaultUDPRetransmit
	}
	attempts := c.UDPMaxAttempts
	if attempts <= 0 {
		attempts = DefaultUDPMaxAttempts
	}
	buf := make([]byte, udpMaxPacket)
	fail := func(step string, err error) (*udpResponse, error) {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, fmt.Errorf("tracker: udp %s: %s: %w", u.Host, step, err)
	}
	for n := 0; n < attempts; {
		timeout := base << min(n, udpMaxBackoffExp)
		id, cached := c.connID(key)
		if !cached {
			tid := rand.Uint32()
			resp, err := c.udpExchange(conn, buf, udpConnectRequest(tid), tid, timeout, ipv6)
			if errors.Is(err, errUDPTimeout) && ctx.Err() == nil {
				n++
				continue
			}
			if err != nil {
				return fail("connect", err)
			}
			if resp.Action != actionConnect {
				return fail("connect", fmt.Errorf("response has action %d, want %d", resp.Action, actionConnect))
			}
			id = resp.ConnectionID
			c.storeConnID(key, id)
		}
		tid := rand.Uint32()
		resp, err := c.udpExchange(conn, buf, build(id, tid), tid, timeout, ipv6)
		if errors.Is(err, errUDPTimeout) && ctx.Err() == nil {
			if cached {
				// The ID may have been issued to another of our sockets or
				// forgotten by a restarted tracker; do not trust it again.
				c.dropConnID(key)
			}
			n++
			continue
		}
		if err != nil {
			var fe *FailureError
			if errors.As(err, &fe) {
				c.dropConnID(key)
			}
			return fail(actionName(action), err)
		}
		if resp.Action != action {
			return fail(actionName(action), fmt.Errorf("response has action %d, want %d", resp.Action, action))
		}
		return resp, nil
	}
	return nil, fmt.Errorf("tracker: udp %s: %s: no response after %d attempts", u.Host, actionName(action), attempts)
}

func actionName(a uint32) string {
	switch a {
	case actionConnect:
		return "connect"
	case actionAnnounce:
		return "announce"
	case actionScrape:
		return "scrape"
	}
	return fmt.Sprintf("action %d", a)
}

// udpExchange sends pkt and waits up to timeout for the packet answering
// transaction tid. Packets for other transactions (late answers to earlier
// retransmissions, spoofing attempts) are ignored. A tracker error packet
// becomes a *FailureError.
func (c *Client) udpExchange(conn net.Conn, buf, pkt []byte, tid uint32, timeout time.Duration, ipv6 bool) (*udpResponse, error) {
	if _, err := conn.Write(pkt); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	log := c.logger()
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, errUDPTimeout
			}
			// Includes ECONNREFUSED from an ICMP port-unreachable: nobody
			// listens there, so retransmitting is pointless.
			return nil, fmt.Errorf("receive: %w", err)
		}
		p := buf[:n]
		if n < 8 {
			log.Debug("tracker: ignoring runt udp packet", "bytes", n)
			continue
		}
		if got := binary.BigEndian.Uint32(p[4:]); got != tid {
			log.Debug("tracker: ignoring udp packet for another transaction", "got", got, "want", tid)
			continue
		}
		resp, err := parseUDPResponse(p, ipv6, log)
		if err != nil {
			return nil, err
		}
		if resp.Action == actionError {
			return nil, &FailureError{Reason: resp.Message}
		}
		return resp, nil
	}
}

func (c *Client) connID(key string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.connIDs[key]
	if !ok {
		return 0, false
	}
	if c.clock().Sub(e.got) >= udpConnIDLifetime {
		delete(c.connIDs, key)
		return 0, false
	}
	return e.id, true
}

func (c *Client) storeConnID(key string, id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connIDs == nil {
		c.connIDs = make(map[string]udpConnID)
	}
	now := c.clock()
	// Keep the cache bounded by the trackers still in use.
	for k, e := range c.connIDs {
		if now.Sub(e.got) >= udpConnIDLifetime {
			delete(c.connIDs, k)
		}
	}
	c.connIDs[key] = udpConnID{id: id, got: now}
}

func (c *Client) dropConnID(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.connIDs, key)
}
