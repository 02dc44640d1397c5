// Package mse implements Message Stream Encryption (MSE, also called
// Protocol Encryption, PE): the obfuscated handshake BitTorrent clients use
// so that their connections do not look like BitTorrent, and the RC4 stream
// that may follow it. It has no BEP; the facts it follows are those of the
// Vuze wiki page every client implements (summarised in the project's
// shared/specs/mse.md).
//
// MSE hides a connection from passive inspection (traffic shaping that
// looks for the BitTorrent handshake); it is not authenticated and gives no
// secrecy against anyone who knows the torrent's info-hash.
//
// # Use
//
// The side that dials calls [Initiate] with the torrent's info-hash (SKEY),
// the methods it offers and its BitTorrent handshake as the initial payload,
// which then travels with the key exchange and costs no round trip:
//
//	c, err := mse.Initiate(ctx, conn, infoHash, mse.RC4|mse.Plaintext, hs, nil)
//	// read the peer's handshake from c, then talk through c
//
// The side that accepts first calls [Detect] to tell a plaintext handshake
// from an MSE one (without losing the bytes it looked at), then [Accept]
// with a lookup from HASH("req2", SKEY) (see [Req2]) to the info-hash of a
// torrent it serves:
//
//	conn, plain, err := mse.Detect(conn)
//	if !plain {
//		c, err := mse.Accept(ctx, conn, lookup, allowed, nil)
//		// c's stream starts with the initiator's initial payload
//	}
//
// The returned [*Conn] encrypts and decrypts as the chosen method says:
// RC4 decrypts in place in the caller's buffer on Read, and encrypts on
// Write (in place, without a copy, with [Conn.WriteInPlace]).
//
// For raw system calls (internal/rawsock), wrap the TCP connection before
// the handshake: every layer above it reads and writes through it.
package mse

import (
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Method is a set of crypto methods, as in the handshake's crypto_provide
// and crypto_select bit fields.
type Method uint32

const (
	// Plaintext: the handshake is obfuscated, the payload after it is not.
	Plaintext Method = 0x01
	// RC4: the whole stream is RC4-encrypted.
	RC4 Method = 0x02
)

// known is every method this package implements.
const known = Plaintext | RC4

func (m Method) String() string {
	var parts []string
	if m&RC4 != 0 {
		parts = append(parts, "rc4")
	}
	if m&Plaintext != 0 {
		parts = append(parts, "plaintext")
	}
	if rest := m &^ known; rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(rest)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// DefaultTimeout bounds a whole handshake, as the specification says: a
// peer that has not completed it by then is dropped.
const DefaultTimeout = 30 * time.Second

// Options tunes a handshake; the zero value (or nil) gives the defaults.
type Options struct {
	// Timeout bounds the whole handshake; 0 means DefaultTimeout.
	Timeout time.Duration
	// Rand is the source of the private key and the padding; nil means
	// crypto/rand. Tests set it to make a handshake reproducible.
	Rand io.Reader
	// PreferPlaintext makes Accept choose the plaintext payload when the
	// peer offers both methods (the handshake stays obfuscated), as
	// libtorrent does by default: RC4 is the costliest part of a transfer
	// on each side.
	PreferPlaintext bool
}

func (o *Options) timeout() time.Duration {
	if o == nil || o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

func (o *Options) random() io.Reader {
	if o == nil || o.Rand == nil {
		return rand.Reader
	}
	return o.Rand
}

// Errors a handshake ends with when the peer is not a usable MSE peer; they
// are wrapped with context. Any other error is the connection's (a reset,
// a timeout: os.ErrDeadlineExceeded) or the context's.
var (
	// ErrNoSync: the synchronisation point (HASH("req1", S) for the
	// accepting side, the encrypted verification constant for the
	// initiating side) is not where it must be, 608 bytes from the start at
	// most. A peer that is not speaking MSE, or garbage, ends here.
	ErrNoSync = errors.New("mse: synchronisation point not found")
	// ErrUnknownTorrent: the accepting side serves no torrent whose SKEY
	// matches the initiator's.
	ErrUnknownTorrent = errors.New("mse: no torrent matches the peer's SKEY hash")
	// ErrNoCommonMethod: no crypto method is both offered and allowed.
	ErrNoCommonMethod = errors.New("mse: no crypto method in common")
	// ErrProtocol: the peer broke the handshake's rules (a bad public key,
	// verification constant, pad length or method).
	ErrProtocol = errors.New("mse: protocol violation")
)

// Req2 returns HASH("req2", skey). An accepting session keeps a map from
// it to the info-hash of each of its torrents, which [Accept]'s lookup
// consults: one SHA-1 per torrent when it is added, a map access per
// incoming connection.
func Req2(skey [20]byte) [20]byte { return hash("req2", skey[:]) }

// hash is HASH(tag, parts...) of the specification: SHA-1 of the
// concatenation.
func hash(tag string, parts ...[]byte) [20]byte {
	h := sha1.New()
	h.Write([]byte(tag))
	for _, p := range parts {
		h.Write(p)
	}
	var sum [20]byte
	h.Sum(sum[:0])
	return sum
}
