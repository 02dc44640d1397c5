package engine

import (
	"net"

	"github.com/sowerbt/sower/mse"
)

// PeerHint is what the engine knows of a peer's encryption when it dials
// it, for Config.Connect.
type PeerHint struct {
	// Encrypt: the peer said it prefers encrypted connections (PEX flag
	// 0x01 from another peer, or "e" in its own extension handshake).
	Encrypt bool
	// Plaintext: our last connection to it ended up in plaintext (it
	// refused encryption), so an encrypted first try is likely wasted.
	Plaintext bool
}

// Encryption of a peer connection, as PeerInfo.Encryption reports it.
const (
	EncryptionNone       = ""           // plain BitTorrent
	EncryptionRC4        = "rc4"        // MSE, RC4 payload
	EncryptionObfuscated = "obfuscated" // MSE handshake, plaintext payload
)

// encryptionOf tells how conn is protected, looking through the engine's
// own wrappers down to an MSE connection.
func encryptionOf(c net.Conn) string {
	for {
		switch x := c.(type) {
		case *gatedConn:
			c = x.Conn
		case *limitedConn:
			c = x.Conn
		case *mse.Conn:
			if x.Method() == mse.RC4 {
				return EncryptionRC4
			}
			return EncryptionObfuscated
		default:
			return EncryptionNone
		}
	}
}

// inPlaceWriter is a connection that may encrypt the caller's buffer in
// place (mse.Conn.WriteInPlace) rather than copy it: the peer writer owns
// its batch buffer and refills it only after the write.
type inPlaceWriter interface {
	WriteInPlace(b []byte) (int, error)
}

// writeInPlace writes b through c, letting an encrypting connection
// beneath the engine's wrappers overwrite b with ciphertext.
func writeInPlace(c net.Conn, b []byte) (int, error) {
	if w, ok := c.(inPlaceWriter); ok {
		return w.WriteInPlace(b)
	}
	return c.Write(b)
}

// WriteInPlace forwards to the wrapped connection (see inPlaceWriter).
func (c *gatedConn) WriteInPlace(b []byte) (int, error) { return writeInPlace(c.Conn, b) }
