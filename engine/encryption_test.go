package engine

import (
	"net"
	"testing"
)

// TestPEXEncryptionFlag: a peer is announced over PEX as preferring
// encryption (0x01) when its connection is encrypted or it said "e".
func TestPEXEncryptionFlag(t *testing.T) {
	for _, tc := range []struct {
		p    *peer
		want byte
	}{
		{&peer{}, pexReachable},
		{&peer{seed: true}, pexReachable | pexSeed},
		{&peer{encryption: EncryptionRC4}, pexReachable | pexEncryption},
		{&peer{encryption: EncryptionObfuscated}, pexReachable | pexEncryption},
		{&peer{prefersEncryption: true, seed: true}, pexReachable | pexSeed | pexEncryption},
	} {
		if got := tc.p.pexFlags(); got != tc.want {
			t.Errorf("seed %v, encryption %q, prefers %v: flags %#x, want %#x", tc.p.seed, tc.p.encryption, tc.p.prefersEncryption, got, tc.want)
		}
	}
}

// TestEncryptionOfWrappers: the engine's own wrappers do not hide a
// plain connection's lack of encryption, and writeInPlace falls back to
// Write on connections without WriteInPlace.
func TestEncryptionOfWrappers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	wrapped := &limitedConn{Conn: &gatedConn{Conn: a, release: func() {}}}
	if got := encryptionOf(wrapped); got != EncryptionNone {
		t.Fatalf("plain pipe: %q", got)
	}
	go func() {
		buf := make([]byte, 5)
		n, _ := b.Read(buf)
		b.Write(buf[:n])
	}()
	msg := []byte("hello")
	if n, err := writeInPlace(wrapped, msg); n != 5 || err != nil {
		t.Fatalf("writeInPlace: %d, %v", n, err)
	}
	got := make([]byte, 5)
	if _, err := a.Read(got); err != nil || string(got) != "hello" || string(msg) != "hello" {
		t.Fatalf("echo %q, buffer %q, err %v", got, msg, err)
	}
}
