package engine

import (
	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/peerwire"
)

// extHandshakeMsg is the BEP 10 extension handshake. M maps the
// extensions we speak to our message ids; later layers (metadata, PEX)
// add theirs.
type extHandshakeMsg struct {
	M    map[string]int `bencode:"m"`
	P    int            `bencode:"p,omitempty"`
	V    string         `bencode:"v,omitempty"`
	Reqq int            `bencode:"reqq,omitempty"`
}

// clientVersion is what we tell peers in the extension handshake.
const clientVersion = "Sower 0.1.0"

// advertisedReqq is the request queue length we tell peers; we accept up to
// maxPeerRequests so messages in flight when a peer hits it do not cost
// the connection.
const advertisedReqq = maxPeerRequests / 2

func (t *Torrent) extHandshake() peerwire.Message {
	payload, err := bencode.Marshal(extHandshakeMsg{
		M:    map[string]int{},
		P:    int(t.cfg.Port),
		V:    clientVersion,
		Reqq: advertisedReqq,
	})
	if err != nil {
		// The value is built from constants; failure is a bug.
		panic("engine: encoding extension handshake: " + err.Error())
	}
	return peerwire.Message{ID: peerwire.Extended, ExtendedID: 0, Payload: payload}
}

// onExtHandshake reads what we use of the peer's extension handshake: its
// request queue limit and client name. A malformed handshake is ignored
// (extensions are optional), not a reason to drop a good peer.
func (t *Torrent) onExtHandshake(p *peer, payload []byte) {
	var h struct {
		V    string `bencode:"v"`
		Reqq int    `bencode:"reqq"`
	}
	if err := (bencode.DecodeOptions{AllowUnsortedKeys: true}).Unmarshal(payload, &h); err != nil {
		t.log.Debug("bad extension handshake", "peer", p.addr, "err", err)
		return
	}
	p.extHandshake = true
	if h.Reqq > 0 {
		p.maxRequests = min(h.Reqq, 4096)
	}
	if h.V != "" && len(h.V) < 64 {
		p.client = h.V
	}
}
