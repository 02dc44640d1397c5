package dht

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/sowerbt/sower/bencode"
)

// KRPC error codes from BEP 5.
const (
	ErrCodeGeneric  = 201
	ErrCodeServer   = 202
	ErrCodeProtocol = 203
	ErrCodeMethod   = 204
)

// Limits on what a single KRPC message may carry. A UDP datagram cannot be
// larger than maxPacket anyway; the tighter bounds stop a peer from making
// us echo or hold more than a normal message needs.
const (
	maxPacket    = 8192 // bytes read per datagram; larger ones are dropped
	maxTIDLen    = 32   // transaction ids are echoed back, so bound them
	maxTokenLen  = 64
	maxValues    = 512 // compact peers in one get_peers reply
	compactV4    = 6
	compactV6    = 18
	nodeLenV4    = 20 + compactV4
	nodeLenV6    = 20 + compactV6
	maxWantFlags = 8
)

// Error is a KRPC error message, received from a remote node or sent to
// one. Code is one of the ErrCode constants (or any code a remote chose).
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("krpc error %d: %s", e.Code, e.Msg) }

// MarshalBencode writes the error as the two-element list of BEP 5.
func (e *Error) MarshalBencode() ([]byte, error) {
	return bencode.Marshal([]any{e.Code, e.Msg})
}

// UnmarshalBencode reads the [code, message] list, refusing anything else
// so that a malformed error cannot pass for a valid one.
func (e *Error) UnmarshalBencode(b []byte) error {
	var l []any
	if err := bencode.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("error list: %w", err)
	}
	if len(l) != 2 {
		return fmt.Errorf("error list has %d elements, want 2", len(l))
	}
	code, ok := l[0].(int64)
	if !ok {
		return errors.New("error code is not an integer")
	}
	msg, ok := l[1].(string)
	if !ok {
		return errors.New("error message is not a string")
	}
	e.Code, e.Msg = int(code), msg
	return nil
}

// msg is one KRPC message: a query (y=q), a response (y=r) or an error
// (y=e). Binary fields are Go strings holding raw bytes.
type msg struct {
	T  string `bencode:"t"`
	Y  string `bencode:"y"`
	Q  string `bencode:"q,omitempty"`
	A  *args  `bencode:"a,omitempty"`
	R  *reply `bencode:"r,omitempty"`
	E  *Error `bencode:"e,omitempty"`
	IP string `bencode:"ip,omitempty"` // BEP 42: the requester's compact address, in replies
	RO int    `bencode:"ro,omitempty"` // BEP 43: the sender is read-only
	V  string `bencode:"v,omitempty"`
}

// args are the arguments of every query kind this node understands.
type args struct {
	ID          string   `bencode:"id"`
	Target      string   `bencode:"target,omitempty"`
	InfoHash    string   `bencode:"info_hash,omitempty"`
	Port        int      `bencode:"port,omitempty"`
	ImpliedPort int      `bencode:"implied_port,omitempty"`
	Token       string   `bencode:"token,omitempty"`
	Want        []string `bencode:"want,omitempty"`
}

// reply is the "r" dictionary of every response kind.
type reply struct {
	ID     string   `bencode:"id"`
	Nodes  string   `bencode:"nodes,omitempty"`
	Nodes6 string   `bencode:"nodes6,omitempty"`
	Values []string `bencode:"values,omitempty"`
	Token  string   `bencode:"token,omitempty"`
}

// wireOptions accepts dict keys out of order, which some deployed DHT
// implementations write; duplicates are still refused.
var wireOptions = bencode.DecodeOptions{AllowUnsortedKeys: true, MaxDepth: 8}

// decodeMsg parses and validates one datagram. On error it may still return
// a partially filled message, so that a query with bad arguments can be
// answered with an error carrying its transaction id.
func decodeMsg(b []byte) (*msg, error) {
	if len(b) >= maxPacket {
		return nil, fmt.Errorf("packet of %d bytes exceeds the %d-byte limit", len(b), maxPacket-1)
	}
	m := new(msg)
	if err := wireOptions.Unmarshal(b, m); err != nil {
		var te *bencode.UnmarshalTypeError
		if errors.As(err, &te) {
			return m, fmt.Errorf("malformed message: %w", err)
		}
		return nil, fmt.Errorf("malformed message: %w", err)
	}
	if err := m.validate(); err != nil {
		return m, err
	}
	return m, nil
}

// validate checks the fields a message of its kind must have.
func (m *msg) validate() error {
	if m.T == "" {
		return errors.New("missing transaction id t")
	}
	if len(m.T) > maxTIDLen {
		return fmt.Errorf("transaction id t of %d bytes exceeds %d", len(m.T), maxTIDLen)
	}
	switch m.Y {
	case "q":
		if m.Q == "" {
			return errors.New("query without method name q")
		}
		if m.A == nil {
			return errors.New("query without arguments a")
		}
		return m.A.validate()
	case "r":
		if m.R == nil {
			return errors.New("response without r dictionary")
		}
		return m.R.validate()
	case "e":
		if m.E == nil {
			return errors.New("error message without e list")
		}
		return nil
	case "":
		return errors.New("missing message type y")
	default:
		return fmt.Errorf("unknown message type y=%q", m.Y)
	}
}

func (a *args) validate() error {
	if len(a.ID) != 20 {
		return fmt.Errorf("a.id is %d bytes, want 20", len(a.ID))
	}
	if a.Target != "" && len(a.Target) != 20 {
		return fmt.Errorf("a.target is %d bytes, want 20", len(a.Target))
	}
	if a.InfoHash != "" && len(a.InfoHash) != 20 {
		return fmt.Errorf("a.info_hash is %d bytes, want 20", len(a.InfoHash))
	}
	if len(a.Token) > maxTokenLen {
		return fmt.Errorf("a.token of %d bytes exceeds %d", len(a.Token), maxTokenLen)
	}
	if a.Port < 0 || a.Port > 65535 {
		return fmt.Errorf("a.port %d out of range", a.Port)
	}
	if a.ImpliedPort != 0 && a.ImpliedPort != 1 {
		return fmt.Errorf("a.implied_port %d is not 0 or 1", a.ImpliedPort)
	}
	if len(a.Want) > maxWantFlags {
		return fmt.Errorf("a.want has %d entries, at most %d allowed", len(a.Want), maxWantFlags)
	}
	return nil
}

func (r *reply) validate() error {
	if len(r.ID) != 20 {
		return fmt.Errorf("r.id is %d bytes, want 20", len(r.ID))
	}
	if len(r.Nodes)%nodeLenV4 != 0 {
		return fmt.Errorf("r.nodes is %d bytes, not a multiple of %d", len(r.Nodes), nodeLenV4)
	}
	if len(r.Nodes6)%nodeLenV6 != 0 {
		return fmt.Errorf("r.nodes6 is %d bytes, not a multiple of %d", len(r.Nodes6), nodeLenV6)
	}
	if len(r.Values) > maxValues {
		return fmt.Errorf("r.values has %d entries, at most %d allowed", len(r.Values), maxValues)
	}
	for i, v := range r.Values {
		if len(v) != compactV4 && len(v) != compactV6 {
			return fmt.Errorf("r.values[%d] is %d bytes, want %d or %d", i, len(v), compactV4, compactV6)
		}
	}
	if len(r.Token) > maxTokenLen {
		return fmt.Errorf("r.token of %d bytes exceeds %d", len(r.Token), maxTokenLen)
	}
	return nil
}

// contact is a node as other nodes describe it: an id and a UDP address.
type contact struct {
	id   [20]byte
	addr netip.AddrPort
}

// appendCompactAddr appends the BEP 5 / BEP 32 compact form of a: the
// address in network order followed by the big-endian port.
func appendCompactAddr(dst []byte, a netip.AddrPort) []byte {
	ip := a.Addr().Unmap()
	dst = append(dst, ip.AsSlice()...)
	return binary.BigEndian.AppendUint16(dst, a.Port())
}

// parseCompactAddr reads a 6-byte IPv4 or 18-byte IPv6 compact address.
func parseCompactAddr(b []byte) (netip.AddrPort, error) {
	var ip netip.Addr
	switch len(b) {
	case compactV4:
		ip = netip.AddrFrom4([4]byte(b[:4]))
	case compactV6:
		ip = netip.AddrFrom16([16]byte(b[:16]))
	default:
		return netip.AddrPort{}, fmt.Errorf("compact address is %d bytes, want %d or %d", len(b), compactV4, compactV6)
	}
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[len(b)-2:])), nil
}

// appendCompactNodes appends the compact node info of each contact whose
// address family matches v6 and skips the others.
func appendCompactNodes(dst []byte, cs []contact, v6 bool) []byte {
	for _, c := range cs {
		if c.addr.Addr().Unmap().Is4() == v6 {
			continue
		}
		dst = append(dst, c.id[:]...)
		dst = appendCompactAddr(dst, c.addr)
	}
	return dst
}

// parseCompactNodes reads a "nodes" (26-byte entries) or "nodes6"
// (38-byte entries) string. Entries with port 0 or an unspecified address
// cannot be contacted and are skipped.
func parseCompactNodes(s string, v6 bool) ([]contact, error) {
	size := nodeLenV4
	if v6 {
		size = nodeLenV6
	}
	if len(s)%size != 0 {
		return nil, fmt.Errorf("compact nodes of %d bytes, not a multiple of %d", len(s), size)
	}
	out := make([]contact, 0, len(s)/size)
	for off := 0; off < len(s); off += size {
		var c contact
		copy(c.id[:], s[off:off+20])
		a, err := parseCompactAddr([]byte(s[off+20 : off+size]))
		if err != nil {
			return nil, fmt.Errorf("node at offset %d: %w", off, err)
		}
		if a.Port() == 0 || a.Addr().IsUnspecified() {
			continue
		}
		c.addr = a
		out = append(out, c)
	}
	return out, nil
}
