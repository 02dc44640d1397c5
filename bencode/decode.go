package bencode

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
)

const (
	// defaultMaxDepth is deep enough for any real metainfo or DHT message
	// (they nest at most a handful of levels) while keeping recursion shallow.
	defaultMaxDepth = 64
	// maxMaxDepth caps DecodeOptions.MaxDepth so that no option value can
	// make the recursive decoder exhaust the goroutine stack.
	maxMaxDepth = 10000
	// maxIndirections bounds pointer and interface dereferences that consume
	// no input, so a self-referential type such as `type P *P` ends in an
	// error instead of endless recursion.
	maxIndirections = 10000
)

// Unmarshaler is implemented by types that decode their own bencode form.
// UnmarshalBencode receives the exact bytes of one complete, already
// validated value. The slice aliases the input and must be copied if it is
// kept after the method returns.
type Unmarshaler interface {
	UnmarshalBencode([]byte) error
}

// DecodeOptions selects how strictly input is checked. The zero value is the
// strict default used by Unmarshal.
type DecodeOptions struct {
	// AllowUnsortedKeys accepts dicts whose keys are not in ascending byte
	// order, as written by some old torrent creators. Duplicate keys are
	// still rejected, because which of them wins would be ambiguous.
	AllowUnsortedKeys bool
	// MaxDepth limits how deeply lists and dicts may nest. Zero or a
	// negative value means the default of 64; values above 10000 are
	// treated as 10000 so the decoder cannot exhaust its stack.
	MaxDepth int
	// MaxMemory bounds the memory decoding may allocate, as the decoder
	// estimates it: every list or dict, element, map entry, string copy
	// and boxed integer is charged about what it costs on the heap, so
	// the budget also bounds the number of elements. Zero means
	// DefaultMemoryFactor times the input's length plus 64 KiB; a
	// negative value means no limit. Without a budget, 10 MB of empty
	// dicts decoded into any take over 300 MB.
	MaxMemory int64
}

// DefaultMemoryFactor is the default budget of decoded memory per byte of
// input. Real data stays well under it: a torrent's pieces cost about
// their own size, a file list of one-letter names about ten times its
// size; a list of empty dicts or lists would cost 50 to 100 times.
const DefaultMemoryFactor = 16

// defaultMemorySlack is added to the default budget so that small inputs
// are never refused.
const defaultMemorySlack = 64 << 10

// ErrBudget is wrapped by the *SyntaxError of a decode that went over its
// memory budget (DecodeOptions.MaxMemory).
var ErrBudget = errors.New("decoding would take more memory than the input allows")

func (o DecodeOptions) budget(n int) int64 {
	switch {
	case o.MaxMemory < 0:
		return math.MaxInt64
	case o.MaxMemory > 0:
		return o.MaxMemory
	}
	return DefaultMemoryFactor*int64(n) + defaultMemorySlack
}

func (o DecodeOptions) maxDepth() int {
	switch {
	case o.MaxDepth <= 0:
		return defaultMaxDepth
	case o.MaxDepth > maxMaxDepth:
		return maxMaxDepth
	}
	return o.MaxDepth
}

// Unmarshal decodes the single bencode value in data into the value pointed
// to by v, using the strict default options. See DecodeOptions.Unmarshal.
func Unmarshal(data []byte, v any) error {
	return DecodeOptions{}.Unmarshal(data, v)
}

// Unmarshal decodes the single bencode value in data into the value pointed
// to by v. Data must hold exactly one value: anything after it is an error.
//
// Byte strings decode into string, []byte, [N]byte (exact length only) or
// any (as string); integers into any integer kind (range checked), bool
// (0 or 1 only) or any (as int64); lists into slices, arrays (exact length
// only) or any (as []any); dicts into structs, maps with string keys or any
// (as map[string]any). Dict keys that match no struct field are skipped
// after being validated. Types implementing Unmarshaler decode themselves.
//
// A syntax error stops decoding and is returned as a *SyntaxError. A value of
// the wrong type is skipped and reported as an *UnmarshalTypeError after the
// rest of the input has been checked. In either case v may have been
// partially filled in.
func (o DecodeOptions) Unmarshal(data []byte, v any) error {
	return o.unmarshal(data, v, 0)
}

// unmarshal decodes data whose first byte sits at stream offset base.
func (o DecodeOptions) unmarshal(data []byte, v any, base int64) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	d := decodeState{
		data:          data,
		base:          base,
		maxDepth:      o.maxDepth(),
		allowUnsorted: o.AllowUnsortedKeys,
		budget:        o.budget(len(data)),
	}
	d.left = d.budget
	elem := rv.Elem()
	if err := typeDecoder(elem.Type())(&d, elem); err != nil {
		return err
	}
	if d.off < len(data) {
		return d.syntaxError(d.off, "trailing data after top-level value")
	}
	return d.savedErr
}

// validate checks that data is exactly one well-formed value. Unsorted dict
// keys are accepted because raw values (RawMessage, Marshaler output) are
// written verbatim and may legitimately come from old torrent files.
func validate(data []byte) error {
	d := decodeState{data: data, maxDepth: maxMaxDepth, allowUnsorted: true}
	if err := d.skip(); err != nil {
		return err
	}
	if d.off < len(data) {
		return d.syntaxError(d.off, "trailing data after value")
	}
	return nil
}

// keyRef records a dict key and its offset, for duplicate detection in
// dicts whose keys are not sorted.
type keyRef struct {
	key []byte
	off int
}

// decodeState is the cursor of one Unmarshal call. Every read checks bounds
// against data, so no input can make it index out of range.
type decodeState struct {
	data          []byte
	off           int   // next unread byte
	base          int64 // stream offset of data[0], added to reported offsets
	depth         int   // current list/dict nesting
	maxDepth      int
	indirections  int // pointer/interface dereferences in progress
	allowUnsorted bool
	keys          []keyRef // stack of keys of the open dicts, only with allowUnsorted
	path          []string // dict keys leading to the current value, for errors
	savedErr      error    // first non-syntax error, returned at the end
	budget, left  int64    // memory budget, and what is left of it
}

// Estimated heap costs of decoded values, charged against the budget.
const (
	costBoxed     = 8  // an int64 in an interface
	costString    = 16 // a string header, plus its bytes
	costList      = 24 // a slice header
	costListElem  = 16 // an interface in a []any's backing array
	costDict      = 48 // a map
	costDictEntry = 40 // a map entry with its key header, plus the key's bytes
)

// charge takes n bytes from the budget, failing once it is spent.
func (d *decodeState) charge(n int) error {
	d.left -= int64(n)
	if d.left < 0 {
		return &SyntaxError{
			Offset: d.base + int64(d.off),
			Msg:    fmt.Sprintf("decoded value over the memory budget (%d bytes for %d bytes of input)", d.budget, len(d.data)),
			err:    ErrBudget,
		}
	}
	return nil
}

func (d *decodeState) syntaxError(off int, msg string) error {
	return &SyntaxError{Offset: d.base + int64(off), Msg: msg}
}

func (d *decodeState) eofError(what string) error {
	return &SyntaxError{
		Offset: d.base + int64(len(d.data)),
		Msg:    "unexpected end of input " + what,
		err:    io.ErrUnexpectedEOF,
	}
}

// truncated reports a string that runs past the end of the input; like
// other truncation it wraps io.ErrUnexpectedEOF.
func (d *decodeState) truncated(off int, msg string) error {
	return &SyntaxError{Offset: d.base + int64(off), Msg: msg, err: io.ErrUnexpectedEOF}
}

// saveError keeps the first recoverable error; later ones are usually
// consequences of it.
func (d *decodeState) saveError(err error) {
	if d.savedErr == nil {
		d.savedErr = err
	}
}

// typeError records that the value starting at off (of kind what) does not
// fit type t.
func (d *decodeState) typeError(off int, what string, t reflect.Type) {
	if d.savedErr != nil {
		return
	}
	field := ""
	for i, p := range d.path {
		if i > 0 {
			field += "."
		}
		field += p
	}
	d.savedErr = &UnmarshalTypeError{Offset: d.base + int64(off), Value: what, Type: t, Field: field}
}

// peek returns the next byte without consuming it. what describes the
// expected value for the truncation message.
func (d *decodeState) peek(what string) (byte, error) {
	if d.off >= len(d.data) {
		return 0, d.eofError(what)
	}
	return d.data[d.off], nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// kindName names the kind of value that starts with c.
func kindName(c byte) string {
	switch {
	case c == 'i':
		return "integer"
	case isDigit(c):
		return "string"
	case c == 'l':
		return "list"
	case c == 'd':
		return "dict"
	}
	return "invalid value"
}

// badStart reports a byte that cannot begin a value.
func (d *decodeState) badStart(c byte) error {
	if c == 'e' {
		return d.syntaxError(d.off, "unexpected 'e' where a value was expected")
	}
	return d.syntaxError(d.off, fmt.Sprintf("invalid byte %q at start of value", c))
}

// readInt consumes an integer; data[d.off] must be 'i'. It enforces the
// canonical form: no leading zeros, no "-0", at least one digit, and a
// value within int64.
func (d *decodeState) readInt() (int64, error) {
	start := d.off
	data := d.data
	i := start + 1
	neg := false
	if i < len(data) && data[i] == '-' {
		neg = true
		i++
	}
	digits := i
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	var n uint64
	for ; i < len(data) && data[i] != 'e'; i++ {
		c := data[i]
		if !isDigit(c) {
			return 0, d.syntaxError(i, fmt.Sprintf("invalid byte %q in integer", c))
		}
		if i == digits+1 && data[digits] == '0' {
			return 0, d.syntaxError(digits, "leading zero in integer")
		}
		v := uint64(c - '0')
		if n > (limit-v)/10 {
			return 0, d.syntaxError(start, "integer overflows int64")
		}
		n = n*10 + v
	}
	if i >= len(data) {
		return 0, d.eofError("in integer")
	}
	if i == digits {
		if neg {
			return 0, d.syntaxError(i, "no digits after '-' in integer")
		}
		return 0, d.syntaxError(i, "empty integer")
	}
	if neg && n == 0 {
		return 0, d.syntaxError(start+1, "negative zero integer")
	}
	d.off = i + 1
	if neg {
		// For n == 1<<63 the conversion wraps to MinInt64 and negating
		// MinInt64 yields MinInt64, which is the intended value.
		return -int64(n), nil
	}
	return int64(n), nil
}

// readString consumes a byte string; data[d.off] must be a digit. The length
// is checked against the remaining input while its digits are read, so a
// huge length prefix fails before anything is allocated. The result aliases
// data and has its capacity clipped so appending to it cannot clobber data.
func (d *decodeState) readString() ([]byte, error) {
	start := d.off
	data := d.data
	i := start
	n := 0
	for ; i < len(data) && data[i] != ':'; i++ {
		c := data[i]
		if !isDigit(c) {
			return nil, d.syntaxError(i, fmt.Sprintf("invalid byte %q in string length", c))
		}
		if i == start+1 && data[start] == '0' {
			return nil, d.syntaxError(start, "leading zero in string length")
		}
		// n stays at most len(data), so n*10+9 cannot overflow int.
		n = n*10 + int(c-'0')
		if n > len(data) {
			return nil, d.truncated(start, fmt.Sprintf("string length exceeds the %d bytes of input", len(data)))
		}
	}
	if i >= len(data) {
		return nil, d.eofError("in string length")
	}
	if i == start {
		return nil, d.syntaxError(i, "empty string length")
	}
	body := i + 1
	if n > len(data)-body {
		return nil, d.truncated(start, fmt.Sprintf("string length %d exceeds the %d remaining bytes", n, len(data)-body))
	}
	d.off = body + n
	return data[body : body+n : body+n], nil
}

// enter consumes the 'l' or 'd' of a container and enforces MaxDepth.
func (d *decodeState) enter() error {
	if d.depth >= d.maxDepth {
		return d.syntaxError(d.off, fmt.Sprintf("nesting deeper than %d levels", d.maxDepth))
	}
	d.depth++
	d.off++
	return nil
}

// listNext reports whether another list element follows. At the closing
// 'e' it consumes it, leaves the list and reports false.
func (d *decodeState) listNext() (bool, error) {
	c, err := d.peek("in list")
	if err != nil {
		return false, err
	}
	if c == 'e' {
		d.off++
		d.depth--
		return false, nil
	}
	return true, nil
}

// dictIter tracks key order within one dict.
type dictIter struct {
	prev   []byte
	n      int  // keys seen
	sorted bool // keys so far strictly ascending, which also rules out duplicates
	base   int  // len(d.keys) when the dict was entered
}

// dictBegin consumes the 'd' of a dict.
func (d *decodeState) dictBegin() (dictIter, error) {
	if err := d.enter(); err != nil {
		return dictIter{}, err
	}
	return dictIter{sorted: true, base: len(d.keys)}, nil
}

// dictNext reads the next key and checks its order. It guarantees that a
// value follows the key, so the caller can decode or skip it next. At the
// closing 'e' it leaves the dict and reports false.
func (d *decodeState) dictNext(it *dictIter) ([]byte, bool, error) {
	c, err := d.peek("in dict")
	if err != nil {
		return nil, false, err
	}
	if c == 'e' {
		if d.allowUnsorted {
			if !it.sorted {
				if err := d.checkDuplicates(it.base); err != nil {
					return nil, false, err
				}
			}
			d.keys = d.keys[:it.base]
		}
		d.off++
		d.depth--
		return nil, false, nil
	}
	if !isDigit(c) {
		if c == 'i' || c == 'l' || c == 'd' {
			return nil, false, d.syntaxError(d.off, "dict key must be a byte string, found "+kindName(c))
		}
		return nil, false, d.syntaxError(d.off, fmt.Sprintf("invalid byte %q at start of dict key", c))
	}
	keyOff := d.off
	key, err := d.readString()
	if err != nil {
		return nil, false, err
	}
	if it.n > 0 && it.sorted {
		switch c := bytes.Compare(key, it.prev); {
		case c == 0:
			return nil, false, d.syntaxError(keyOff, "duplicate dict key "+quoteKey(key))
		case c < 0:
			if !d.allowUnsorted {
				return nil, false, d.syntaxError(keyOff, "dict key "+quoteKey(key)+" is not sorted after "+quoteKey(it.prev))
			}
			it.sorted = false
		}
	}
	it.prev = key
	it.n++
	if d.allowUnsorted {
		d.keys = append(d.keys, keyRef{key: key, off: keyOff})
	}
	c, err = d.peek("after dict key")
	if err != nil {
		return nil, false, err
	}
	if c == 'e' {
		return nil, false, d.syntaxError(d.off, "missing value for dict key "+quoteKey(key))
	}
	return key, true, nil
}

// checkDuplicates finds the earliest repeated key among d.keys[base:] in
// O(n log n), so a dict with many unsorted keys cannot cost quadratic time.
func (d *decodeState) checkDuplicates(base int) error {
	ks := d.keys[base:]
	slices.SortFunc(ks, func(a, b keyRef) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.off, b.off)
	})
	dup := -1
	for i := 1; i < len(ks); i++ {
		if bytes.Equal(ks[i].key, ks[i-1].key) && (dup < 0 || ks[i].off < ks[dup].off) {
			dup = i
		}
	}
	if dup >= 0 {
		return d.syntaxError(ks[dup].off, "duplicate dict key "+quoteKey(ks[dup].key))
	}
	return nil
}

// quoteKey quotes a key for an error message, truncating long keys so a
// hostile input cannot blow up the error text.
func quoteKey(k []byte) string {
	const max = 64
	if len(k) > max {
		return strconv.Quote(string(k[:max])) + "..."
	}
	return strconv.Quote(string(k))
}

// skip validates and consumes one value of any kind.
func (d *decodeState) skip() error {
	c, err := d.peek("where a value was expected")
	if err != nil {
		return err
	}
	switch {
	case c == 'i':
		_, err := d.readInt()
		return err
	case isDigit(c):
		_, err := d.readString()
		return err
	case c == 'l':
		if err := d.enter(); err != nil {
			return err
		}
		for {
			more, err := d.listNext()
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == 'd':
		it, err := d.dictBegin()
		if err != nil {
			return err
		}
		for {
			_, more, err := d.dictNext(&it)
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	}
	return d.badStart(c)
}

// anyValue decodes one value into the generic representation: int64,
// string, []any or map[string]any. It avoids reflection entirely.
func (d *decodeState) anyValue() (any, error) {
	c, err := d.peek("where a value was expected")
	if err != nil {
		return nil, err
	}
	switch {
	case c == 'i':
		n, err := d.readInt()
		if err != nil {
			return nil, err
		}
		return n, d.charge(costBoxed)
	case isDigit(c):
		s, err := d.readString()
		if err != nil {
			return nil, err
		}
		if err := d.charge(costString + len(s)); err != nil {
			return nil, err
		}
		return string(s), nil
	case c == 'l':
		if err := d.enter(); err != nil {
			return nil, err
		}
		if err := d.charge(costList); err != nil {
			return nil, err
		}
		list := []any{}
		for {
			more, err := d.listNext()
			if err != nil {
				return nil, err
			}
			if !more {
				return list, nil
			}
			x, err := d.anyValue()
			if err != nil {
				return nil, err
			}
			// Each growth of the list allocates a new backing array;
			// the old ones are garbage only after the next collection.
			if c := cap(list); len(list) == c {
				list = append(list, x)
				if err := d.charge(costListElem * cap(list)); err != nil {
					return nil, err
				}
			} else {
				list = append(list, x)
			}
		}
	case c == 'd':
		it, err := d.dictBegin()
		if err != nil {
			return nil, err
		}
		if err := d.charge(costDict); err != nil {
			return nil, err
		}
		m := map[string]any{}
		for {
			key, more, err := d.dictNext(&it)
			if err != nil {
				return nil, err
			}
			if !more {
				return m, nil
			}
			if err := d.charge(costDictEntry + len(key)); err != nil {
				return nil, err
			}
			x, err := d.anyValue()
			if err != nil {
				return nil, err
			}
			m[string(key)] = x
		}
	}
	return nil, d.badStart(c)
}
