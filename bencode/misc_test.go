package bencode

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestOmitEmpty(t *testing.T) {
	type all struct {
		B   bool           `bencode:"b,omitempty"`
		I   int16          `bencode:"i,omitempty"`
		U   uint           `bencode:"u,omitempty"`
		S   string         `bencode:"s,omitempty"`
		L   []int          `bencode:"l,omitempty"`
		M   map[string]int `bencode:"m,omitempty"`
		A   [0]int         `bencode:"a,omitempty"`
		P   *int           `bencode:"p,omitempty"`
		Any any            `bencode:"any,omitempty"`
		F   float64        `bencode:"f,omitempty"` // unsupported, but never reached
		Z   struct{}       `bencode:"z,omitempty"` // structs are never empty
	}
	_, err := Marshal(all{})
	var ute *UnsupportedTypeError
	if !errors.As(err, &ute) || ute.Type.Kind() != reflect.Float64 {
		t.Fatalf("zero float with omitempty: got %v, want UnsupportedTypeError for float64", err)
	}
	type noFloat struct {
		all
		F int `bencode:"f,omitempty"`
	}
	b, err := Marshal(noFloat{})
	if err != nil || string(b) != "d1:zdee" {
		t.Fatalf("all empty: %q %v", b, err)
	}
	full := noFloat{all: all{B: true, I: -1, U: 1, S: "s", L: []int{0}, M: map[string]int{"": 0}, P: new(int), Any: 0}, F: 2}
	b, err = Marshal(full)
	if want := "d3:anyi0e1:bi1e1:fi2e1:ii-1e1:lli0ee1:md0:i0ee1:pi0e1:s1:s1:ui1e1:zdee"; err != nil || string(b) != want {
		t.Fatalf("all set: %q %v, want %q", b, err, want)
	}
}

type Exported struct {
	X int `bencode:"x"`
}

type hidden struct {
	Y int `bencode:"y"`
}

func TestUnexportedEmbedded(t *testing.T) {
	type outer struct {
		hidden // fields promoted even though the type is unexported
		*Exported
	}
	var o outer
	if err := Unmarshal([]byte("d1:xi1e1:yi2ee"), &o); err != nil {
		t.Fatal(err)
	}
	if o.Y != 2 || o.Exported == nil || o.X != 1 {
		t.Fatalf("got %+v", o)
	}
	if b, err := Marshal(o); err != nil || string(b) != "d1:xi1e1:yi2ee" {
		t.Fatalf("Marshal = %q %v", b, err)
	}

	type ptrHidden struct {
		*hidden
		Z int `bencode:"z"`
	}
	// Reflection cannot allocate an unexported embedded pointer: the key is
	// skipped and reported, the rest is decoded.
	var p ptrHidden
	err := Unmarshal([]byte("d1:yi2e1:zi3ee"), &p)
	if err == nil || !strings.Contains(err.Error(), "embedded pointer to unexported struct") ||
		!strings.Contains(err.Error(), "offset 4") {
		t.Fatalf("got %v", err)
	}
	if p.Z != 3 {
		t.Fatalf("Z = %d, want 3", p.Z)
	}
	// Once allocated by the caller, it is filled in.
	p = ptrHidden{hidden: &hidden{}}
	if err := Unmarshal([]byte("d1:yi2e1:zi3ee"), &p); err != nil || p.Y != 2 {
		t.Fatalf("got %+v %v", p, err)
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&SyntaxError{Offset: 3, Msg: "bad"}, "bencode: bad at offset 3"},
		{&UnmarshalTypeError{Offset: 1, Value: "string", Type: reflect.TypeFor[int]()},
			"bencode: cannot unmarshal string into Go value of type int at offset 1"},
		{&UnmarshalTypeError{Offset: 1, Value: "integer 300", Type: reflect.TypeFor[uint8](), Field: "info.len"},
			`bencode: cannot unmarshal integer 300 into Go value of type uint8 (dict key "info.len") at offset 1`},
		{&InvalidUnmarshalError{}, "bencode: Unmarshal(nil)"},
		{&InvalidUnmarshalError{Type: reflect.TypeFor[int]()}, "bencode: Unmarshal(non-pointer int)"},
		{&InvalidUnmarshalError{Type: reflect.TypeFor[*int]()}, "bencode: Unmarshal(nil *int)"},
		{&UnsupportedTypeError{Type: reflect.TypeFor[float32]()}, "bencode: unsupported type: float32"},
		{&UnsupportedValueError{Msg: "nil"}, "bencode: unsupported value: nil"},
		{&UnsupportedValueError{Type: reflect.TypeFor[*int](), Msg: "nil pointer"}, "bencode: unsupported value of type *int: nil pointer"},
		{&MarshalerError{Type: reflect.TypeFor[int](), Err: errors.New("x")}, "bencode: error calling MarshalBencode for type int: x"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	inner := errors.New("inner")
	if !errors.Is(&MarshalerError{Err: inner}, inner) {
		t.Error("MarshalerError does not unwrap")
	}
	// Long keys are truncated in messages.
	key := strings.Repeat("k", 1000)
	err := Unmarshal([]byte("d1000:"+key+"i1e1:ai1ee"), new(any))
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("message for long key: %v", err)
	}
}

func TestInterfaceFields(t *testing.T) {
	type withAny struct {
		V any      `bencode:"v"`
		S stringer `bencode:"s"`
	}
	b, err := Marshal(withAny{V: map[string]any{"k": []any{int64(1), "x", []byte("y")}}, S: name("n")})
	if err != nil || string(b) != "d1:s1:n1:vd1:kli1e1:x1:yeee" {
		t.Fatalf("Marshal = %q %v", b, err)
	}
	var out struct {
		V any `bencode:"v"`
	}
	out.V = "replaced"
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"k": []any{int64(1), "x", "y"}}; !reflect.DeepEqual(out.V, want) {
		t.Fatalf("got %#v", out.V)
	}
}

// stringer is a non-empty interface; values in it are encoded by their
// dynamic type.
type stringer interface{ String() string }

type name string

func (n name) String() string { return string(n) }
