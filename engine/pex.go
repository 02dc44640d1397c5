package engine

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/peerwire"
)

// Peer exchange (BEP 11): connected peers tell each other whom they are
// connected to, at most once a minute, as changes since the last message.

const (
	pexEvery = time.Minute
	// pexMax bounds the added and dropped lists of one message, in both
	// directions (BEP 11 suggests 50).
	pexMax = 50
)

type pexMsg struct {
	Added    []byte `bencode:"added,omitempty"`
	AddedF   []byte `bencode:"added.f,omitempty"`
	Added6   []byte `bencode:"added6,omitempty"`
	Added6F  []byte `bencode:"added6.f,omitempty"`
	Dropped  []byte `bencode:"dropped,omitempty"`
	Dropped6 []byte `bencode:"dropped6,omitempty"`
}

// sendPEX sends each peer that speaks ut_pex the changes in our peer set
// since the last message to it.
func (t *Torrent) sendPEX(now time.Time) {
	if t.info.Private {
		return
	}
	current := make(map[netip.AddrPort]byte, len(t.peers))
	for q := range t.peers {
		if a := q.listenAddr(); a.IsValid() {
			current[a] = q.pexFlags()
		}
	}
	for p := range t.peers {
		id, ok := p.extIDs["ut_pex"]
		if !ok || now.Sub(p.pexAt) < pexEvery {
			continue
		}
		if p.pexSent == nil {
			p.pexSent = make(map[netip.AddrPort]bool)
		}
		var m pexMsg
		added, dropped := 0, 0
		self := p.listenAddr()
		for a, flags := range current {
			if a == self || p.pexSent[a] || added == pexMax {
				continue
			}
			if a.Addr().Is4() {
				m.Added = appendCompact(m.Added, a)
				m.AddedF = append(m.AddedF, flags)
			} else {
				m.Added6 = appendCompact(m.Added6, a)
				m.Added6F = append(m.Added6F, flags)
			}
			p.pexSent[a] = true
			added++
		}
		for a := range p.pexSent {
			if _, still := current[a]; still || dropped == pexMax {
				continue
			}
			if a.Addr().Is4() {
				m.Dropped = appendCompact(m.Dropped, a)
			} else {
				m.Dropped6 = appendCompact(m.Dropped6, a)
			}
			delete(p.pexSent, a)
			dropped++
		}
		p.pexAt = now
		if added == 0 && dropped == 0 {
			continue
		}
		payload, err := bencode.Marshal(m)
		if err != nil {
			continue
		}
		p.send(peerwire.Message{ID: peerwire.Extended, ExtendedID: id, Payload: payload})
	}
}

// PEX flags of an added peer (BEP 11).
const (
	pexEncryption = 0x01 // prefers encryption
	pexSeed       = 0x02
	pexReachable  = 0x10 // we are connected to it
)

// pexFlags are the flags we tell others about p with.
func (p *peer) pexFlags() byte {
	flags := byte(pexReachable)
	if p.seed {
		flags |= pexSeed
	}
	if p.prefersEncryption || p.encryption != EncryptionNone {
		flags |= pexEncryption
	}
	return flags
}

// onPEX learns peers from a PEX message, and which of them prefer
// encryption (dialled encrypted first). Lists are capped; malformed ones
// are ignored, since PEX is advisory.
func (t *Torrent) onPEX(p *peer, payload []byte) {
	addrs, encrypt, err := parsePEX(payload)
	if err != nil {
		t.log.Debug("bad PEX message", "peer", p.addr, "err", err)
		return
	}
	t.learn(addrs)
	for _, a := range encrypt {
		if c := t.known[netip.AddrPortFrom(a.Addr().Unmap(), a.Port())]; c != nil {
			c.hint.Encrypt = true
		}
	}
}

// parsePEX returns the added addresses of a ut_pex message, at most pexMax
// of each family (entries with port 0 are skipped), and those of them
// flagged as preferring encryption.
func parsePEX(payload []byte) (addrs, encrypt []netip.AddrPort, err error) {
	var m pexMsg
	if err := (bencode.DecodeOptions{AllowUnsortedKeys: true}).Unmarshal(payload, &m); err != nil {
		return nil, nil, fmt.Errorf("PEX message: %w", err)
	}
	for _, l := range []struct {
		compact, flags []byte
		ipLen          int
	}{{m.Added, m.AddedF, 4}, {m.Added6, m.Added6F, 16}} {
		n := l.ipLen + 2
		for i := 0; i+n <= len(l.compact) && i/n < pexMax; i += n {
			a := parseCompact(l.compact[i:i+n], l.ipLen, 1)
			if len(a) == 0 {
				continue // port 0
			}
			addrs = append(addrs, a[0])
			if i/n < len(l.flags) && l.flags[i/n]&pexEncryption != 0 {
				encrypt = append(encrypt, a[0])
			}
		}
	}
	return addrs, encrypt, nil
}

func appendCompact(b []byte, a netip.AddrPort) []byte {
	if a.Addr().Is4() {
		ip := a.Addr().As4()
		b = append(b, ip[:]...)
	} else {
		ip := a.Addr().As16()
		b = append(b, ip[:]...)
	}
	return binary.BigEndian.AppendUint16(b, a.Port())
}

// parseCompact reads up to limit addresses of ipLen-byte IPs plus ports.
func parseCompact(b []byte, ipLen, limit int) []netip.AddrPort {
	var out []netip.AddrPort
	n := ipLen + 2
	for i := 0; i+n <= len(b) && len(out) < limit; i += n {
		var a netip.Addr
		if ipLen == 4 {
			a = netip.AddrFrom4([4]byte(b[i : i+4]))
		} else {
			a = netip.AddrFrom16([16]byte(b[i : i+16]))
		}
		port := binary.BigEndian.Uint16(b[i+ipLen:])
		if port != 0 {
			out = append(out, netip.AddrPortFrom(a, port))
		}
	}
	return out
}
