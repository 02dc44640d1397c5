package bencode

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// maxEncodeDepth bounds nesting (lists, dicts, pointers, interfaces) while
// encoding, turning a pointer cycle into an error instead of a stack
// overflow.
const maxEncodeDepth = 10000

// Marshaler is implemented by types that produce their own bencode form.
// MarshalBencode must return exactly one valid value; Marshal checks this
// and writes the bytes verbatim.
type Marshaler interface {
	MarshalBencode() ([]byte, error)
}

// Marshal returns the canonical bencoding of v: integers without leading
// zeros and dict keys in ascending raw-byte order, so that equal values
// always encode to equal bytes. The only exception is the content of
// RawMessage values and Marshaler output, which is written verbatim.
//
// Strings, []byte and [N]byte encode as byte strings; integers and bool (as
// 0 or 1) as integers; other slices and arrays as lists; maps with string
// keys and structs as dicts. Struct fields use the key from a
// `bencode:"name"` tag or else the Go field name; "omitempty" omits zero
// values and "-" ignores the field. Exported fields of embedded structs are
// promoted as in Go. Nil pointers, nil interfaces and empty RawMessages in
// struct fields and map values are omitted, since bencode has no null; in a
// list or at the top level they are an error. Floats, complex numbers,
// channels, functions, maps with non-string keys and uint64 values above
// math.MaxInt64 cannot be encoded.
func Marshal(v any) ([]byte, error) {
	return Append(nil, v)
}

// Append appends the bencoding of v to dst, as Marshal does, and returns the
// extended slice. On error it returns dst unchanged in length. It lets
// callers build a framed message without copying the encoded payload.
func Append(dst []byte, v any) ([]byte, error) {
	e := encodeState{buf: dst}
	if err := e.encodeAny(v); err != nil {
		return dst, err
	}
	return e.buf, nil
}

// encoderFunc appends the encoding of v to e.buf.
type encoderFunc func(e *encodeState, v reflect.Value) error

type encodeState struct {
	buf   []byte
	depth int
}

func (e *encodeState) enter(t reflect.Type) error {
	if e.depth >= maxEncodeDepth {
		return &UnsupportedValueError{Type: t, Msg: fmt.Sprintf("nested more than %d levels deep (pointer cycle?)", maxEncodeDepth)}
	}
	e.depth++
	return nil
}

func (e *encodeState) writeInt(n int64) {
	e.buf = append(e.buf, 'i')
	e.buf = strconv.AppendInt(e.buf, n, 10)
	e.buf = append(e.buf, 'e')
}

// writeBytes appends a byte string straight from b: one copy, into the
// output buffer.
func (e *encodeState) writeBytes(b []byte) {
	e.buf = strconv.AppendInt(e.buf, int64(len(b)), 10)
	e.buf = append(e.buf, ':')
	e.buf = append(e.buf, b...)
}

func (e *encodeState) writeString(s string) {
	e.buf = strconv.AppendInt(e.buf, int64(len(s)), 10)
	e.buf = append(e.buf, ':')
	e.buf = append(e.buf, s...)
}

// encodeAny encodes a dynamic value, with reflection-free fast paths for the
// generic forms produced by decoding into any.
func (e *encodeState) encodeAny(x any) error {
	switch x := x.(type) {
	case nil:
		return &UnsupportedValueError{Msg: "nil"}
	case int64:
		e.writeInt(x)
	case int:
		e.writeInt(int64(x))
	case string:
		e.writeString(x)
	case []byte:
		e.writeBytes(x)
	case []any:
		if err := e.enter(reflect.TypeFor[[]any]()); err != nil {
			return err
		}
		e.buf = append(e.buf, 'l')
		for _, el := range x {
			if err := e.encodeAny(el); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, 'e')
		e.depth--
	case map[string]any:
		if err := e.enter(reflect.TypeFor[map[string]any]()); err != nil {
			return err
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.buf = append(e.buf, 'd')
		for _, k := range keys {
			el := x[k]
			if absentAny(el) {
				continue
			}
			e.writeString(k)
			if err := e.encodeAny(el); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, 'e')
		e.depth--
	default:
		rv := reflect.ValueOf(x)
		return typeEncoder(rv.Type())(e, rv)
	}
	return nil
}

// absentAny reports whether a dynamic map value stands for "no value".
func absentAny(x any) bool {
	if x == nil {
		return true
	}
	switch rv := reflect.ValueOf(x); rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	case reflect.Slice:
		return rv.Type() == rawMessageType && rv.Len() == 0
	}
	return false
}

// absent reports whether a struct field or map value has no bencode
// representation and is therefore left out of its dict.
func absent(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	case reflect.Slice:
		return v.Type() == rawMessageType && v.Len() == 0
	}
	return false
}

// isEmpty reports whether v is a zero value for the purpose of omitempty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

// typeEncoder returns the cached encoder for t, building it on first use;
// see typeDecoder for how recursive types are handled.
func typeEncoder(t reflect.Type) encoderFunc {
	if f, ok := typeCache.encoders.Load(t); ok {
		return f.(encoderFunc)
	}
	var (
		wg sync.WaitGroup
		f  encoderFunc
	)
	wg.Add(1)
	fi, loaded := typeCache.encoders.LoadOrStore(t, encoderFunc(func(e *encodeState, v reflect.Value) error {
		wg.Wait()
		return f(e, v)
	}))
	if loaded {
		return fi.(encoderFunc)
	}
	f = newTypeEncoder(t, true)
	wg.Done()
	typeCache.encoders.Store(t, f)
	return f
}

// newTypeEncoder builds the encoder for t. With allowAddr, a method
// MarshalBencode with a pointer receiver is used when the value is
// addressable.
func newTypeEncoder(t reflect.Type, allowAddr bool) encoderFunc {
	if t == rawMessageType {
		return rawMessageEncoder
	}
	if t.Implements(marshalerType) {
		return marshalerEncoder
	}
	if allowAddr && t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(marshalerType) {
		plain := newTypeEncoder(t, false)
		return func(e *encodeState, v reflect.Value) error {
			if v.CanAddr() {
				return marshalerEncoder(e, v.Addr())
			}
			return plain(e, v)
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		return boolEncoder
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intEncoder
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return uintEncoder
	case reflect.String:
		return stringEncoder
	case reflect.Slice:
		if isByteElem(t.Elem()) {
			return bytesEncoder
		}
		return newListEncoder(t)
	case reflect.Array:
		if isByteElem(t.Elem()) {
			return byteArrayEncoder
		}
		return newListEncoder(t)
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			return newMapEncoder(t)
		}
	case reflect.Struct:
		return newStructEncoder(t)
	case reflect.Pointer:
		return newPtrEncoder(t)
	case reflect.Interface:
		return interfaceEncoder
	}
	return func(*encodeState, reflect.Value) error {
		return &UnsupportedTypeError{Type: t}
	}
}

func rawMessageEncoder(e *encodeState, v reflect.Value) error {
	b := v.Bytes()
	if len(b) == 0 {
		return &UnsupportedValueError{Type: rawMessageType, Msg: "empty RawMessage"}
	}
	if err := validate(b); err != nil {
		return &MarshalerError{Type: rawMessageType, Err: err}
	}
	e.buf = append(e.buf, b...)
	return nil
}

func marshalerEncoder(e *encodeState, v reflect.Value) error {
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return &UnsupportedValueError{Type: v.Type(), Msg: "nil Marshaler"}
	}
	if !v.CanInterface() {
		return &UnsupportedTypeError{Type: v.Type()}
	}
	m, ok := v.Interface().(Marshaler)
	if !ok {
		return &UnsupportedTypeError{Type: v.Type()}
	}
	b, err := m.MarshalBencode()
	if err != nil {
		return &MarshalerError{Type: v.Type(), Err: err}
	}
	if err := validate(b); err != nil {
		return &MarshalerError{Type: v.Type(), Err: err}
	}
	e.buf = append(e.buf, b...)
	return nil
}

func boolEncoder(e *encodeState, v reflect.Value) error {
	if v.Bool() {
		e.buf = append(e.buf, "i1e"...)
	} else {
		e.buf = append(e.buf, "i0e"...)
	}
	return nil
}

func intEncoder(e *encodeState, v reflect.Value) error {
	e.writeInt(v.Int())
	return nil
}

func uintEncoder(e *encodeState, v reflect.Value) error {
	n := v.Uint()
	if n > math.MaxInt64 {
		return &UnsupportedValueError{Type: v.Type(), Msg: "integer " + strconv.FormatUint(n, 10) + " exceeds int64, which decoders must reject"}
	}
	e.writeInt(int64(n))
	return nil
}

func stringEncoder(e *encodeState, v reflect.Value) error {
	e.writeString(v.String())
	return nil
}

func bytesEncoder(e *encodeState, v reflect.Value) error {
	e.writeBytes(v.Bytes())
	return nil
}

func byteArrayEncoder(e *encodeState, v reflect.Value) error {
	if v.CanAddr() {
		e.writeBytes(v.Bytes())
		return nil
	}
	n := v.Len()
	e.buf = strconv.AppendInt(e.buf, int64(n), 10)
	e.buf = append(e.buf, ':')
	for i := range n {
		e.buf = append(e.buf, byte(v.Index(i).Uint()))
	}
	return nil
}

func newListEncoder(t reflect.Type) encoderFunc {
	elemEnc := typeEncoder(t.Elem())
	return func(e *encodeState, v reflect.Value) error {
		if err := e.enter(t); err != nil {
			return err
		}
		e.buf = append(e.buf, 'l')
		for i := range v.Len() {
			ev := v.Index(i)
			if absent(ev) {
				return &UnsupportedValueError{Type: ev.Type(), Msg: fmt.Sprintf("nil or empty element %d in list", i)}
			}
			if err := elemEnc(e, ev); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, 'e')
		e.depth--
		return nil
	}
}

func newMapEncoder(t reflect.Type) encoderFunc {
	elemEnc := typeEncoder(t.Elem())
	type entry struct {
		key string
		val reflect.Value
	}
	return func(e *encodeState, v reflect.Value) error {
		if err := e.enter(t); err != nil {
			return err
		}
		entries := make([]entry, 0, v.Len())
		for it := v.MapRange(); it.Next(); {
			entries = append(entries, entry{key: it.Key().String(), val: it.Value()})
		}
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
		e.buf = append(e.buf, 'd')
		for _, en := range entries {
			if absent(en.val) {
				continue
			}
			e.writeString(en.key)
			if err := elemEnc(e, en.val); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, 'e')
		e.depth--
		return nil
	}
}

func newStructEncoder(t reflect.Type) encoderFunc {
	fields := cachedFields(t)
	encs := make([]encoderFunc, len(fields))
	for i, f := range fields {
		encs[i] = typeEncoder(f.typ)
	}
	return func(e *encodeState, v reflect.Value) error {
		if err := e.enter(t); err != nil {
			return err
		}
		e.buf = append(e.buf, 'd')
		for i := range fields {
			f := &fields[i]
			fv, ok := fieldForGet(v, f.index)
			if !ok || absent(fv) || (f.omitEmpty && isEmpty(fv)) {
				continue
			}
			e.buf = append(e.buf, f.prefix...)
			if err := encs[i](e, fv); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, 'e')
		e.depth--
		return nil
	}
}

// fieldForGet walks index from struct v; it reports false when a nil
// embedded pointer means the field does not exist in this value.
func fieldForGet(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

func newPtrEncoder(t reflect.Type) encoderFunc {
	elemEnc := typeEncoder(t.Elem())
	return func(e *encodeState, v reflect.Value) error {
		if v.IsNil() {
			return &UnsupportedValueError{Type: t, Msg: "nil pointer"}
		}
		if err := e.enter(t); err != nil {
			return err
		}
		err := elemEnc(e, v.Elem())
		e.depth--
		return err
	}
}

func interfaceEncoder(e *encodeState, v reflect.Value) error {
	if v.IsNil() {
		return &UnsupportedValueError{Type: v.Type(), Msg: "nil interface"}
	}
	if err := e.enter(v.Type()); err != nil {
		return err
	}
	var err error
	if v.CanInterface() {
		err = e.encodeAny(v.Interface())
	} else {
		el := v.Elem()
		err = typeEncoder(el.Type())(e, el)
	}
	e.depth--
	return err
}
