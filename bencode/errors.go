package bencode

import (
	"fmt"
	"reflect"
)

// SyntaxError reports input that is not valid bencode, or that breaks one of
// the strictness rules (canonical integers, sorted unique dict keys, depth
// and size limits). Offset counts bytes from the start of the input given to
// Unmarshal, or from the start of the stream for a Decoder.
type SyntaxError struct {
	Offset int64  // byte offset at which the problem was detected
	Msg    string // description of the problem

	// err is an underlying cause such as io.ErrUnexpectedEOF, so callers can
	// tell truncated input from corrupt input with errors.Is.
	err error
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("bencode: %s at offset %d", e.Msg, e.Offset)
}

// Unwrap returns io.ErrUnexpectedEOF for truncated input, ErrBudget for
// input over the memory budget, and nil otherwise.
func (e *SyntaxError) Unwrap() error { return e.err }

// UnmarshalTypeError reports a well-formed bencode value that cannot be
// stored in the Go value it was decoded into. Decoding continues past such a
// value so that all syntax is still checked; the first UnmarshalTypeError is
// returned once the whole input has been read.
type UnmarshalTypeError struct {
	Offset int64        // byte offset of the start of the offending value
	Value  string       // "integer", "string", "list", "dict", or a more precise description such as "integer 300"
	Type   reflect.Type // Go type the value could not be assigned to
	Field  string       // dotted path of dict keys leading to the value, empty for the top-level value
}

func (e *UnmarshalTypeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("bencode: cannot unmarshal %s into Go value of type %v (dict key %q) at offset %d",
			e.Value, e.Type, e.Field, e.Offset)
	}
	return fmt.Sprintf("bencode: cannot unmarshal %s into Go value of type %v at offset %d", e.Value, e.Type, e.Offset)
}

// InvalidUnmarshalError reports a destination that Unmarshal cannot write
// through: it must be a non-nil pointer.
type InvalidUnmarshalError struct {
	Type reflect.Type // type of the argument, nil if the argument was nil
}

func (e *InvalidUnmarshalError) Error() string {
	if e.Type == nil {
		return "bencode: Unmarshal(nil)"
	}
	if e.Type.Kind() != reflect.Pointer {
		return "bencode: Unmarshal(non-pointer " + e.Type.String() + ")"
	}
	return "bencode: Unmarshal(nil " + e.Type.String() + ")"
}

// UnsupportedTypeError reports a Go type that has no bencode representation,
// such as floats, channels, functions, or maps whose keys are not strings.
type UnsupportedTypeError struct {
	Type reflect.Type
}

func (e *UnsupportedTypeError) Error() string {
	return "bencode: unsupported type: " + e.Type.String()
}

// UnsupportedValueError reports a Go value that cannot be encoded although
// its type can, such as a nil pointer inside a list, a uint64 above the
// int64 range that every decoder must reject, or data nested too deeply
// (usually a pointer cycle).
type UnsupportedValueError struct {
	Type reflect.Type // type of the value, nil for a nil interface
	Msg  string
}

func (e *UnsupportedValueError) Error() string {
	if e.Type == nil {
		return "bencode: unsupported value: " + e.Msg
	}
	return fmt.Sprintf("bencode: unsupported value of type %v: %s", e.Type, e.Msg)
}

// MarshalerError wraps an error from a MarshalBencode method, or reports
// that the method returned bytes that are not exactly one bencode value.
type MarshalerError struct {
	Type reflect.Type
	Err  error
}

func (e *MarshalerError) Error() string {
	return fmt.Sprintf("bencode: error calling MarshalBencode for type %v: %v", e.Type, e.Err)
}

// Unwrap returns the underlying error.
func (e *MarshalerError) Unwrap() error { return e.Err }
