package bencode

import (
	"bytes"
	"errors"
)

// RawMessage is an encoded bencode value kept as its exact bytes. Decoding
// into a RawMessage stores a copy of the input bytes of the value without
// re-encoding them, which is what the info-hash of a torrent must be
// computed over. Encoding a RawMessage writes it verbatim after checking
// that it is exactly one valid value (unsorted dict keys are accepted, so a
// raw info dict from an old torrent survives a round trip unchanged).
type RawMessage []byte

// MarshalBencode returns m after checking that it holds one valid value.
func (m RawMessage) MarshalBencode() ([]byte, error) {
	if len(m) == 0 {
		return nil, errors.New("bencode: empty RawMessage")
	}
	if err := validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalBencode stores a copy of data, which the decoder has already
// validated.
func (m *RawMessage) UnmarshalBencode(data []byte) error {
	if m == nil {
		return errors.New("bencode: UnmarshalBencode on nil *RawMessage")
	}
	*m = bytes.Clone(data)
	return nil
}
