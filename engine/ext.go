package engine

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/metadata"
	"github.com/sowerbt/sower/peerwire"
)

// extHandshakeMsg is the BEP 10 extension handshake. M maps the
// extensions we speak to our message ids.
type extHandshakeMsg struct {
	M            map[string]int `bencode:"m"`
	P            int            `bencode:"p,omitempty"`
	V            string         `bencode:"v,omitempty"`
	Reqq         int            `bencode:"reqq,omitempty"`
	MetadataSize int            `bencode:"metadata_size,omitempty"`
}

// clientVersion is what we tell peers in the extension handshake.
const clientVersion = "Sower 0.1.0"

// advertisedReqq is the request queue length we tell peers; we accept up to
// maxPeerRequests so messages in flight when a peer hits it do not cost
// the connection.
const advertisedReqq = maxPeerRequests / 2

// Our extended message ids (BEP 10 lets each side choose its own).
const (
	extMetadata = 1 // ut_metadata, BEP 9
	extPEX      = 2 // ut_pex, BEP 11
)

func (t *Torrent) extHandshake() peerwire.Message {
	m := map[string]int{}
	size := 0
	if len(t.cfg.InfoBytes) > 0 {
		m[metadata.ExtensionName] = extMetadata
		size = len(t.cfg.InfoBytes)
	}
	if !t.info.Private {
		m["ut_pex"] = extPEX
	}
	payload, err := bencode.Marshal(extHandshakeMsg{
		M:            m,
		P:            int(t.cfg.Port),
		V:            clientVersion,
		Reqq:         advertisedReqq,
		MetadataSize: size,
	})
	if err != nil {
		// The value is built from constants; failure is a bug.
		panic("engine: encoding extension handshake: " + err.Error())
	}
	return peerwire.Message{ID: peerwire.Extended, ExtendedID: 0, Payload: payload}
}

// extInfo is what we use of a peer's extension handshake.
type extInfo struct {
	reqq   int              // the peer's request queue length, 0 if not given
	client string           // the peer's client name, "" if not given or implausibly long
	port   uint16           // the peer's listening port, 0 if not given
	ids    map[string]uint8 // the peer's ids for the extensions we speak
}

// parseExtHandshake decodes the fields we use of a BEP 10 handshake, with
// each value checked against its legal range.
func parseExtHandshake(payload []byte) (extInfo, error) {
	var h struct {
		M    map[string]int `bencode:"m"`
		P    int            `bencode:"p"`
		V    string         `bencode:"v"`
		Reqq int            `bencode:"reqq"`
	}
	if err := (bencode.DecodeOptions{AllowUnsortedKeys: true}).Unmarshal(payload, &h); err != nil {
		return extInfo{}, fmt.Errorf("extension handshake: %w", err)
	}
	var x extInfo
	if h.Reqq > 0 {
		x.reqq = min(h.Reqq, 4096)
	}
	if h.V != "" && len(h.V) < 64 {
		x.client = h.V
	}
	if h.P > 0 && h.P < 65536 {
		x.port = uint16(h.P)
	}
	x.ids = make(map[string]uint8, 2)
	for _, name := range []string{metadata.ExtensionName, "ut_pex"} {
		// Id 0 means the peer turned the extension off.
		if id, ok := h.M[name]; ok && id > 0 && id < 256 {
			x.ids[name] = uint8(id)
		}
	}
	return x, nil
}

// onExtHandshake reads what we use of the peer's extension handshake. A
// malformed handshake is ignored (extensions are optional), not a reason
// to drop a good peer.
func (t *Torrent) onExtHandshake(p *peer, payload []byte) {
	x, err := parseExtHandshake(payload)
	if err != nil {
		t.log.Debug("bad extension handshake", "peer", p.addr, "err", err)
		return
	}
	if x.reqq > 0 {
		p.maxRequests = x.reqq
	}
	if x.client != "" {
		p.client = x.client
	}
	if x.port != 0 {
		p.listenPort = x.port
	}
	p.extIDs = x.ids
}

// listenAddr is where the peer accepts connections: the address we dialed,
// or for an incoming connection its IP with the port from its extension
// handshake. Zero if unknown.
func (p *peer) listenAddr() netip.AddrPort {
	switch {
	case p.outgoing:
		return p.addr
	case p.listenPort != 0:
		return netip.AddrPortFrom(p.addr.Addr(), p.listenPort)
	}
	return netip.AddrPort{}
}

// onExtended dispatches an extended message sent with one of our ids.
func (t *Torrent) onExtended(p *peer, m peerwire.Message) error {
	switch m.ExtendedID {
	case 0:
		t.onExtHandshake(p, m.Payload)
	case extMetadata:
		return t.onMetadataMsg(p, m.Payload)
	case extPEX:
		if !t.info.Private {
			t.onPEX(p, m.Payload)
		}
	}
	return nil
}

// onMetadataMsg serves the info dictionary to a peer fetching it from a
// magnet link (BEP 9).
func (t *Torrent) onMetadataMsg(p *peer, payload []byte) error {
	msg, err := metadata.ParseMsg(payload)
	if errors.Is(err, metadata.ErrUnknownType) {
		return nil // BEP 9: ignore unknown message types
	}
	if err != nil {
		return err
	}
	id, ok := p.extIDs[metadata.ExtensionName]
	if msg.Type != metadata.TypeRequest || !ok {
		return nil
	}
	size := len(t.cfg.InfoBytes)
	reply := metadata.Msg{Type: metadata.TypeReject, Piece: msg.Piece}
	if size > 0 && msg.Piece >= 0 && msg.Piece < metadata.PieceCount(size) {
		off := msg.Piece * metadata.BlockSize
		reply = metadata.Msg{Type: metadata.TypeData, Piece: msg.Piece, TotalSize: size,
			Data: t.cfg.InfoBytes[off : off+metadata.PieceLen(size, msg.Piece)]}
	}
	b, err := reply.Append(nil)
	if err != nil {
		return err
	}
	p.send(peerwire.Message{ID: peerwire.Extended, ExtendedID: id, Payload: b})
	return nil
}
