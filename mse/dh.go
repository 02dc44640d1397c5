package mse

import (
	"fmt"
	"io"
	"math/big"
)

// keyLen is the size of a public key and of the shared secret on the wire:
// the 768-bit modulus, big-endian.
const keyLen = 96

// privLen is the size of a private key: 160 bits, the specification's
// minimum, which keeps the two exponentiations of a handshake short.
const privLen = 20

// dhPrime is the specification's 768-bit modulus P; the generator is 2.
const dhPrime = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563"

// dh holds one side's key pair. Each handshake makes its own, so nothing
// is shared between goroutines.
type dh struct {
	p, x *big.Int
	pub  [keyLen]byte
}

// newDH draws a private key from r and computes the public key 2^x mod P.
func newDH(r io.Reader) (*dh, error) {
	var xb [privLen]byte
	if _, err := io.ReadFull(r, xb[:]); err != nil {
		return nil, fmt.Errorf("mse: drawing a private key: %w", err)
	}
	xb[0] |= 0x80 // a full 160 bits: never a short (or zero) exponent
	d := &dh{x: new(big.Int).SetBytes(xb[:])}
	d.p, _ = new(big.Int).SetString(dhPrime, 16)
	y := new(big.Int).Exp(big.NewInt(2), d.x, d.p)
	y.FillBytes(d.pub[:])
	return d, nil
}

// secret returns S = peer^x mod P, 96 bytes big-endian. A peer key outside
// [2, P-2] would make S predictable (0, 1 or ±1), so it is refused.
func (d *dh) secret(peer []byte) ([keyLen]byte, error) {
	var s [keyLen]byte
	y := new(big.Int).SetBytes(peer)
	pMinus1 := new(big.Int).Sub(d.p, big.NewInt(1))
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pMinus1) >= 0 {
		return s, fmt.Errorf("%w: public key out of range", ErrProtocol)
	}
	new(big.Int).Exp(y, d.x, d.p).FillBytes(s[:])
	return s, nil
}
