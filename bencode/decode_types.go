package bencode

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"sync"
)

// decoderFunc decodes the value at d.off into v, which is always
// addressable and settable. It returns only syntax errors (and errors from
// Unmarshaler methods); type mismatches are recorded in d and skipped.
type decoderFunc func(d *decodeState, v reflect.Value) error

var (
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
	marshalerType   = reflect.TypeFor[Marshaler]()
	rawMessageType  = reflect.TypeFor[RawMessage]()
	stringType      = reflect.TypeFor[string]()
)

// typeDecoder returns the cached decoder for t, building it on first use.
// A recursive type finds a forwarding placeholder in the cache while its
// decoder is being built, which waits until the real one is ready.
func typeDecoder(t reflect.Type) decoderFunc {
	if f, ok := typeCache.decoders.Load(t); ok {
		return f.(decoderFunc)
	}
	var (
		wg sync.WaitGroup
		f  decoderFunc
	)
	wg.Add(1)
	fi, loaded := typeCache.decoders.LoadOrStore(t, decoderFunc(func(d *decodeState, v reflect.Value) error {
		wg.Wait()
		return f(d, v)
	}))
	if loaded {
		return fi.(decoderFunc)
	}
	f = newTypeDecoder(t)
	wg.Done()
	typeCache.decoders.Store(t, f)
	return f
}

func newTypeDecoder(t reflect.Type) decoderFunc {
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(unmarshalerType) {
		return unmarshalerDecoder
	}
	switch t.Kind() {
	case reflect.Bool:
		return boolDecoder
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intDecoder
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return uintDecoder
	case reflect.String:
		return stringDecoder
	case reflect.Slice:
		if isByteElem(t.Elem()) {
			return bytesDecoder
		}
		return newSliceDecoder(t)
	case reflect.Array:
		if isByteElem(t.Elem()) {
			return byteArrayDecoder
		}
		return newArrayDecoder(t)
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			return newMapDecoder(t)
		}
	case reflect.Struct:
		return newStructDecoder(t)
	case reflect.Pointer:
		return newPtrDecoder(t)
	case reflect.Interface:
		if t.NumMethod() == 0 {
			return interfaceDecoder
		}
	}
	return mismatchDecoder
}

// isByteElem reports whether slices or arrays of t are treated as byte
// strings: t is a byte kind without its own bencode methods.
func isByteElem(t reflect.Type) bool {
	return t.Kind() == reflect.Uint8 &&
		!reflect.PointerTo(t).Implements(unmarshalerType) &&
		!reflect.PointerTo(t).Implements(marshalerType)
}

// mismatch skips the value at d.off and records that it does not fit v.
func (d *decodeState) mismatch(v reflect.Value, c byte) error {
	start := d.off
	if err := d.skip(); err != nil {
		return err
	}
	d.typeError(start, kindName(c), v.Type())
	return nil
}

// mismatchDecoder handles types that no bencode value fits, such as
// floats, channels and maps with non-string keys.
func mismatchDecoder(d *decodeState, v reflect.Value) error {
	c, err := d.peek("where a value was expected")
	if err != nil {
		return err
	}
	return d.mismatch(v, c)
}

func unmarshalerDecoder(d *decodeState, v reflect.Value) error {
	start := d.off
	if err := d.skip(); err != nil {
		return err
	}
	u, ok := v.Addr().Interface().(Unmarshaler)
	if !ok {
		// Unreachable: the decoder is only chosen for such types.
		return fmt.Errorf("bencode: %v does not implement Unmarshaler", v.Type())
	}
	if err := u.UnmarshalBencode(d.data[start:d.off:d.off]); err != nil {
		return fmt.Errorf("bencode: %v.UnmarshalBencode for value at offset %d: %w", v.Type(), d.base+int64(start), err)
	}
	return nil
}

// readIntFor reads an integer for v, or skips a value of another kind.
func (d *decodeState) readIntFor(v reflect.Value) (n int64, ok bool, err error) {
	c, err := d.peek("where a value was expected")
	if err != nil {
		return 0, false, err
	}
	if c != 'i' {
		return 0, false, d.mismatch(v, c)
	}
	n, err = d.readInt()
	return n, err == nil, err
}

func boolDecoder(d *decodeState, v reflect.Value) error {
	start := d.off
	n, ok, err := d.readIntFor(v)
	if !ok {
		return err
	}
	if n != 0 && n != 1 {
		d.typeError(start, "integer "+strconv.FormatInt(n, 10), v.Type())
		return nil
	}
	v.SetBool(n == 1)
	return nil
}

func intDecoder(d *decodeState, v reflect.Value) error {
	start := d.off
	n, ok, err := d.readIntFor(v)
	if !ok {
		return err
	}
	if v.OverflowInt(n) {
		d.typeError(start, "integer "+strconv.FormatInt(n, 10), v.Type())
		return nil
	}
	v.SetInt(n)
	return nil
}

func uintDecoder(d *decodeState, v reflect.Value) error {
	start := d.off
	n, ok, err := d.readIntFor(v)
	if !ok {
		return err
	}
	if n < 0 || v.OverflowUint(uint64(n)) {
		d.typeError(start, "integer "+strconv.FormatInt(n, 10), v.Type())
		return nil
	}
	v.SetUint(uint64(n))
	return nil
}

// readStringFor reads a byte string for v, or skips a value of another kind.
func (d *decodeState) readStringFor(v reflect.Value) (s []byte, ok bool, err error) {
	c, err := d.peek("where a value was expected")
	if err != nil {
		return nil, false, err
	}
	if !isDigit(c) {
		return nil, false, d.mismatch(v, c)
	}
	s, err = d.readString()
	return s, err == nil, err
}

func stringDecoder(d *decodeState, v reflect.Value) error {
	s, ok, err := d.readStringFor(v)
	if ok {
		if err := d.charge(len(s)); err != nil {
			return err
		}
		v.SetString(string(s))
	}
	return err
}

func bytesDecoder(d *decodeState, v reflect.Value) error {
	s, ok, err := d.readStringFor(v)
	if ok {
		if err := d.charge(len(s)); err != nil {
			return err
		}
		// Copy: the input may be a Decoder's buffer that gets reused.
		v.SetBytes(bytes.Clone(s))
	}
	return err
}

func byteArrayDecoder(d *decodeState, v reflect.Value) error {
	start := d.off
	s, ok, err := d.readStringFor(v)
	if !ok {
		return err
	}
	if len(s) != v.Len() {
		d.typeError(start, fmt.Sprintf("string of length %d", len(s)), v.Type())
		return nil
	}
	copy(v.Bytes(), s)
	return nil
}

func newSliceDecoder(t reflect.Type) decoderFunc {
	elemDec := typeDecoder(t.Elem())
	elemCost := int(t.Elem().Size())
	return func(d *decodeState, v reflect.Value) error {
		c, err := d.peek("where a value was expected")
		if err != nil {
			return err
		}
		if c != 'l' {
			return d.mismatch(v, c)
		}
		if err := d.enter(); err != nil {
			return err
		}
		if !v.IsNil() {
			v.SetLen(0)
		}
		i := 0
		for {
			more, err := d.listNext()
			if err != nil {
				return err
			}
			if !more {
				break
			}
			if i == v.Cap() {
				// Grow amortizes like append, in place and without the
				// extra slice header that MakeSlice allocates.
				if err := d.charge(max(i, 4) * elemCost); err != nil {
					return err
				}
				v.Grow(max(i, 4))
			}
			v.SetLen(i + 1)
			ev := v.Index(i)
			ev.SetZero() // the backing array may hold an earlier value
			if err := elemDec(d, ev); err != nil {
				return err
			}
			i++
		}
		if v.IsNil() {
			v.Set(reflect.MakeSlice(t, 0, 0))
		}
		return nil
	}
}

func newArrayDecoder(t reflect.Type) decoderFunc {
	elemDec := typeDecoder(t.Elem())
	return func(d *decodeState, v reflect.Value) error {
		c, err := d.peek("where a value was expected")
		if err != nil {
			return err
		}
		if c != 'l' {
			return d.mismatch(v, c)
		}
		start := d.off
		if err := d.enter(); err != nil {
			return err
		}
		i := 0
		for {
			more, err := d.listNext()
			if err != nil {
				return err
			}
			if !more {
				break
			}
			if i < v.Len() {
				err = elemDec(d, v.Index(i))
			} else {
				err = d.skip()
			}
			if err != nil {
				return err
			}
			i++
		}
		if i != v.Len() {
			d.typeError(start, fmt.Sprintf("list of %d elements", i), v.Type())
		}
		for ; i < v.Len(); i++ {
			v.Index(i).SetZero()
		}
		return nil
	}
}

func newMapDecoder(t reflect.Type) decoderFunc {
	kt, et := t.Key(), t.Elem()
	elemDec := typeDecoder(et)
	entryCost := costDictEntry + int(et.Size())
	return func(d *decodeState, v reflect.Value) error {
		c, err := d.peek("where a value was expected")
		if err != nil {
			return err
		}
		if c != 'd' {
			return d.mismatch(v, c)
		}
		it, err := d.dictBegin()
		if err != nil {
			return err
		}
		if v.IsNil() {
			if err := d.charge(costDict); err != nil {
				return err
			}
			v.Set(reflect.MakeMap(t))
		}
		elem := reflect.New(et).Elem()
		for {
			key, more, err := d.dictNext(&it)
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
			if err := d.charge(entryCost + len(key)); err != nil {
				return err
			}
			k := string(key)
			elem.SetZero()
			d.path = append(d.path, k)
			err = elemDec(d, elem)
			d.path = d.path[:len(d.path)-1]
			if err != nil {
				return err
			}
			kv := reflect.ValueOf(k)
			if kt != stringType {
				kv = kv.Convert(kt)
			}
			v.SetMapIndex(kv, elem)
		}
	}
}

func newStructDecoder(t reflect.Type) decoderFunc {
	fields := cachedFields(t)
	decs := make([]decoderFunc, len(fields))
	byName := make(map[string]int, len(fields))
	for i, f := range fields {
		decs[i] = typeDecoder(f.typ)
		byName[f.name] = i
	}
	return func(d *decodeState, v reflect.Value) error {
		c, err := d.peek("where a value was expected")
		if err != nil {
			return err
		}
		if c != 'd' {
			return d.mismatch(v, c)
		}
		it, err := d.dictBegin()
		if err != nil {
			return err
		}
		for {
			key, more, err := d.dictNext(&it)
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
			i, ok := byName[string(key)]
			if !ok {
				if err := d.skip(); err != nil {
					return err
				}
				continue
			}
			f := &fields[i]
			fv, ok := fieldForSet(v, f.index)
			if !ok {
				start := d.off
				if err := d.skip(); err != nil {
					return err
				}
				d.saveError(fmt.Errorf("bencode: cannot set field %q at offset %d: embedded pointer to unexported struct is nil",
					f.name, d.base+int64(start)))
				continue
			}
			d.path = append(d.path, f.name)
			err = decs[i](d, fv)
			d.path = d.path[:len(d.path)-1]
			if err != nil {
				return err
			}
		}
	}
}

// fieldForSet walks index from struct v, allocating nil embedded struct
// pointers on the way. It fails only for a nil pointer in an unexported
// embedded field, which reflection cannot set.
func fieldForSet(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !v.CanSet() {
					return reflect.Value{}, false
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

func newPtrDecoder(t reflect.Type) decoderFunc {
	elemDec := typeDecoder(t.Elem())
	return func(d *decodeState, v reflect.Value) error {
		if d.indirections >= maxIndirections {
			return fmt.Errorf("bencode: more than %d pointer indirections decoding into %v at offset %d",
				maxIndirections, t, d.base+int64(d.off))
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.indirections++
		err := elemDec(d, v.Elem())
		d.indirections--
		return err
	}
}

// interfaceDecoder fills an empty interface with the generic form of the
// value. Whatever the interface held before is replaced.
func interfaceDecoder(d *decodeState, v reflect.Value) error {
	x, err := d.anyValue()
	if err != nil {
		return err
	}
	v.Set(reflect.ValueOf(x))
	return nil
}
