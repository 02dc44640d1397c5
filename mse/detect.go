package mse

import (
	"bytes"
	"fmt"
	"io"
	"net"
)

// btProtocol is how a plaintext BitTorrent handshake starts: the length
// byte 19 and the protocol name.
const btProtocol = "\x13BitTorrent protocol"

// Detect reads the start of an incoming connection to tell a plaintext
// BitTorrent handshake from an MSE one, and returns a connection that
// yields the bytes it read again, then the rest. It reads no further than
// the 20 bytes of "\x13BitTorrent protocol" and stops at the first byte
// that differs, so it never waits for bytes an MSE peer does not send.
// The caller's read deadline bounds it.
//
// With plaintext true, the returned connection carries a BitTorrent
// handshake; otherwise pass it to [Accept], which takes the bytes Detect
// read without another copy.
func Detect(c net.Conn) (conn net.Conn, plaintext bool, err error) {
	var b [len(btProtocol)]byte
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if !bytes.Equal(b[:n], []byte(btProtocol[:n])) {
			return &peekedConn{Conn: c, peeked: bytes.Clone(b[:n])}, false, nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, fmt.Errorf("mse: reading the first bytes: %w", err)
		}
	}
	return &peekedConn{Conn: c, peeked: bytes.Clone(b[:])}, true, nil
}

// peekedConn returns peeked before reading on from Conn.
type peekedConn struct {
	net.Conn
	peeked []byte
}

func (p *peekedConn) Read(b []byte) (int, error) {
	if len(p.peeked) == 0 {
		return p.Conn.Read(b)
	}
	n := copy(b, p.peeked)
	p.peeked = p.peeked[n:]
	return n, nil
}
