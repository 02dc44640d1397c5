package engine

import (
	"errors"
	"net/netip"

	"github.com/sowerbt/sower/metadata"
	"github.com/sowerbt/sower/peerwire"
)

// advertisedReqq is the request queue length we tell peers; we accept up to
// maxPeerRequests so messages in flight when a peer hits it do not cost
// the connection.
const advertisedReqq = maxPeerRequests / 2

// Our extended message ids (BEP 10 lets each side choose its own).
const (
	extMetadata = 1 // ut_metadata, BEP 9
	extPEX      = 2 // ut_pex, BEP 11
)

// extHandshake is our extension handshake to p; it tells p the address
// we see it at ("yourip"), which helps it learn its external address.
func (t *Torrent) extHandshake(p *peer) peerwire.Message {
	m := map[string]int{}
	var size int64
	if len(t.cfg.InfoBytes) > 0 {
		m[metadata.ExtensionName] = extMetadata
		size = int64(len(t.cfg.InfoBytes))
	}
	if !t.info.Private {
		m["ut_pex"] = extPEX
	}
	msg, err := peerwire.ExtHandshake{
		M:            m,
		Port:         t.cfg.Port,
		Client:       peerwire.ClientVersion,
		Reqq:         advertisedReqq,
		MetadataSize: size,
		YourIP:       p.addr.Addr(),
		Encryption:   t.cfg.PreferEncryption != nil && t.cfg.PreferEncryption(),
	}.Message()
	if err != nil {
		// The value is built from constants; failure is a bug.
		panic("engine: " + err.Error())
	}
	return msg
}

// onExtHandshake reads what we use of the peer's extension handshake. A
// malformed handshake is ignored (extensions are optional), not a reason
// to drop a good peer.
func (t *Torrent) onExtHandshake(p *peer, payload []byte) {
	x, err := peerwire.ParseExtHandshake(payload)
	if err != nil {
		t.log.Debug("bad extension handshake", "peer", p.addr, "err", err)
		return
	}
	if x.Reqq > 0 {
		p.maxRequests = x.Reqq
	}
	if x.Client != "" {
		p.client = x.Client
	}
	if x.Port != 0 {
		p.listenPort = x.Port
	}
	if x.YourIP.IsValid() && t.cfg.OnYourIP != nil {
		t.cfg.OnYourIP(p.addr, x.YourIP)
	}
	p.prefersEncryption = x.Encryption
	if c := t.known[p.listenAddr()]; c != nil && x.Encryption {
		c.hint.Encrypt = true
	}
	p.extIDs = make(map[string]uint8, 2)
	for _, name := range []string{metadata.ExtensionName, "ut_pex"} {
		if id, ok := x.ID(name); ok {
			p.extIDs[name] = id
		}
	}
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
