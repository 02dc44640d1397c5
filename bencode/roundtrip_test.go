package bencode

import (
	"bytes"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
)

// genAny is a random value in the generic form that decoding into any
// produces: int64, string, []any, map[string]any.
type genAny struct{ v any }

// Generate implements quick.Generator.
func (genAny) Generate(r *rand.Rand, size int) reflect.Value {
	return reflect.ValueOf(genAny{randomValue(r, size, 4)})
}

func randomBytes(r *rand.Rand, size int) string {
	b := make([]byte, r.Intn(size+1))
	for i := range b {
		// Mostly ASCII, sometimes arbitrary bytes, so that both ordinary
		// and non-UTF-8 keys and strings are covered.
		if r.Intn(4) == 0 {
			b[i] = byte(r.Intn(256))
		} else {
			b[i] = byte('a' + r.Intn(4))
		}
	}
	return string(b)
}

func randomValue(r *rand.Rand, size, depth int) any {
	kinds := 4
	if depth == 0 {
		kinds = 2
	}
	switch r.Intn(kinds) {
	case 0:
		switch r.Intn(3) {
		case 0:
			return int64(r.Intn(21) - 10)
		case 1:
			return int64(r.Uint64()) // full range, including the extremes' neighbourhood
		}
		return []int64{0, -1, 1, 1<<63 - 1, -1 << 63}[r.Intn(5)]
	case 1:
		return randomBytes(r, size)
	case 2:
		l := make([]any, r.Intn(6))
		for i := range l {
			l[i] = randomValue(r, size, depth-1)
		}
		return l
	}
	m := make(map[string]any)
	for range r.Intn(6) {
		m[randomBytes(r, 4)] = randomValue(r, size, depth-1)
	}
	return m
}

func TestPropertyRoundTripAny(t *testing.T) {
	f := func(g genAny) bool {
		b, err := Marshal(g.v)
		if err != nil {
			t.Logf("Marshal(%#v): %v", g.v, err)
			return false
		}
		var got any
		if err := Unmarshal(b, &got); err != nil {
			t.Logf("Unmarshal(%q): %v", b, err)
			return false
		}
		if !reflect.DeepEqual(got, g.v) {
			t.Logf("round trip of %q: got %#v, want %#v", b, got, g.v)
			return false
		}
		// The encoding is canonical: encoding the decoded value again
		// gives the same bytes.
		b2, err := Marshal(got)
		return err == nil && bytes.Equal(b, b2)
	}
	cfg := &quick.Config{MaxCount: 2000, Rand: rand.New(rand.NewSource(1))}
	if err := quick.Check(f, cfg); err != nil {
		t.Fatal(err)
	}
}

// PropFile is exported only so testing/quick can fill it when embedded.
type PropFile struct {
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
	MD5    [16]byte `bencode:"md5sum"`
}

type propRecord struct {
	Name   string           `bencode:"name"`
	Bytes  []byte           `bencode:"bytes"`
	Hash   [20]byte         `bencode:"hash"`
	I      int              `bencode:"i"`
	I8     int8             `bencode:"i8"`
	I64    int64            `bencode:"i64"`
	U16    uint16           `bencode:"u16"`
	U32    uint32           `bencode:"u32"`
	B      bool             `bencode:"b"`
	Ptr    *int32           `bencode:"ptr"`
	List   [][]string       `bencode:"list"`
	Files  []PropFile       `bencode:"files"`
	Map    map[string]int64 `bencode:"map"`
	Nested map[string][]int `bencode:"nested"`
	Sub    *PropFile        `bencode:"sub"`
	PropFile
}

func TestPropertyRoundTripStruct(t *testing.T) {
	f := func(x propRecord) bool {
		b, err := Marshal(&x)
		if err != nil {
			t.Logf("Marshal: %v", err)
			return false
		}
		var got propRecord
		if err := Unmarshal(b, &got); err != nil {
			t.Logf("Unmarshal(%q): %v", b, err)
			return false
		}
		if !reflect.DeepEqual(got, x) {
			t.Logf("round trip of %q:\n got %#v\nwant %#v", b, got, x)
			return false
		}
		b2, err := Marshal(got)
		return err == nil && bytes.Equal(b, b2)
	}
	cfg := &quick.Config{MaxCount: 500, Rand: rand.New(rand.NewSource(2))}
	if err := quick.Check(f, cfg); err != nil {
		t.Fatal(err)
	}
}
