package peerwire

import (
	"fmt"
	"net/netip"

	"github.com/sowerbt/sower/bencode"
)

// ClientVersion is the "v" Sower sends in its extension handshake.
const ClientVersion = "Sower 0.1.0"

// Limits applied to what a peer says in its extension handshake.
const (
	// MaxClientName is the longest "v" kept; longer ones are dropped as
	// implausible.
	MaxClientName = 64
	// MaxReqq caps a peer's "reqq" (its request queue length).
	MaxReqq = 4096
)

// ExtHandshake is the part of a BEP 10 extension handshake Sower sends and
// reads. Zero values are left out when sending.
type ExtHandshake struct {
	// M maps extension names to the sender's message ids for them; 0
	// means the extension is turned off.
	M map[string]int
	// Port is the sender's listening port ("p"); 0 if not given.
	Port uint16
	// Client is the sender's client name ("v"); "" if not given or longer
	// than MaxClientName.
	Client string
	// Reqq is the sender's request queue length, capped at MaxReqq; 0 if
	// not given.
	Reqq int
	// MetadataSize is the size of the info dictionary the sender serves
	// (BEP 9); -1 when parsed from a handshake that has no integer
	// "metadata_size", 0 when sending means "not serving".
	MetadataSize int64
	// YourIP is the receiver's address as the sender sees it ("yourip");
	// invalid if not given or not 4 or 16 bytes.
	YourIP netip.Addr
	// Encryption is "e" (BEP 10): the sender supports and prefers
	// encrypted connections (MSE), so a dialler should open them
	// encrypted. False if not given or not 1.
	Encryption bool
}

// extWire is the handshake as bencoded on the wire.
type extWire struct {
	M            map[string]int `bencode:"m"`
	P            int            `bencode:"p,omitempty"`
	V            string         `bencode:"v,omitempty"`
	Reqq         int            `bencode:"reqq,omitempty"`
	MetadataSize int64          `bencode:"metadata_size,omitempty"`
	YourIP       string         `bencode:"yourip,omitempty"`
	E            int            `bencode:"e,omitempty"`
}

// Message encodes h as the extended message with id 0.
func (h ExtHandshake) Message() (Message, error) {
	m := h.M
	if m == nil {
		m = map[string]int{}
	}
	var yourIP string
	if h.YourIP.IsValid() {
		yourIP = string(h.YourIP.Unmap().AsSlice())
	}
	w := extWire{M: m, P: int(h.Port), V: h.Client, Reqq: h.Reqq, MetadataSize: max(h.MetadataSize, 0), YourIP: yourIP}
	if h.Encryption {
		w.E = 1
	}
	payload, err := bencode.Marshal(w)
	if err != nil {
		return Message{}, fmt.Errorf("encoding extension handshake: %w", err)
	}
	return Message{ID: Extended, ExtendedID: 0, Payload: payload}, nil
}

// ID returns the sender's message id for the extension name, and whether
// the sender speaks it (ids 1-255).
func (h ExtHandshake) ID(name string) (uint8, bool) {
	id, ok := h.M[name]
	if !ok || id <= 0 || id > 255 {
		return 0, false
	}
	return uint8(id), true
}

// ParseExtHandshake decodes an extension handshake's payload. It fails
// only if the payload is not a bencoded dictionary; fields of the wrong
// type or out of range are treated as absent, since extensions are
// optional and one peer's quirk is no reason to refuse it. In M, only ids
// 0-255 are kept.
func ParseExtHandshake(payload []byte) (ExtHandshake, error) {
	var w struct {
		M    map[string]any `bencode:"m"`
		P    any            `bencode:"p"`
		V    any            `bencode:"v"`
		Reqq any            `bencode:"reqq"`
		Size any            `bencode:"metadata_size"`
		IP   any            `bencode:"yourip"`
		E    any            `bencode:"e"`
	}
	if err := (bencode.DecodeOptions{AllowUnsortedKeys: true}).Unmarshal(payload, &w); err != nil {
		return ExtHandshake{}, fmt.Errorf("extension handshake: %w", err)
	}
	h := ExtHandshake{M: make(map[string]int, len(w.M)), MetadataSize: -1}
	for name, v := range w.M {
		if id, ok := v.(int64); ok && id >= 0 && id <= 255 {
			h.M[name] = int(id)
		}
	}
	if p, ok := w.P.(int64); ok && p > 0 && p < 65536 {
		h.Port = uint16(p)
	}
	if v, ok := w.V.(string); ok && len(v) <= MaxClientName {
		h.Client = v
	}
	if r, ok := w.Reqq.(int64); ok && r > 0 {
		h.Reqq = int(min(r, MaxReqq))
	}
	if s, ok := w.Size.(int64); ok {
		h.MetadataSize = s
	}
	if ip, ok := w.IP.(string); ok {
		if a, ok := netip.AddrFromSlice([]byte(ip)); ok {
			h.YourIP = a.Unmap()
		}
	}
	if e, ok := w.E.(int64); ok && e == 1 {
		h.Encryption = true
	}
	return h, nil
}
