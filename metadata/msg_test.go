package metadata

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseMsg(t *testing.T) {
	full := bytes.Repeat([]byte{'x'}, BlockSize)
	tests := []struct {
		name    string
		in      string
		want    Msg
		wantErr string // substring; "" means success
	}{
		{name: "request", in: "d8:msg_typei0e5:piecei0ee", want: Msg{Type: TypeRequest}},
		{name: "reject", in: "d8:msg_typei2e5:piecei7ee", want: Msg{Type: TypeReject, Piece: 7}},
		{name: "data last piece", in: "d8:msg_typei1e5:piecei1e10:total_sizei16390eeabcdef",
			want: Msg{Type: TypeData, Piece: 1, TotalSize: 16390, Data: []byte("abcdef")}},
		{name: "data full piece", in: "d8:msg_typei1e5:piecei0e10:total_sizei16390ee" + string(full),
			want: Msg{Type: TypeData, Piece: 0, TotalSize: 16390, Data: full}},
		{name: "unknown keys ignored", in: "d3:aaai1e8:msg_typei0e5:piecei3e3:zzz3:abce", want: Msg{Piece: 3}},
		{name: "reject with total_size", in: "d8:msg_typei2e5:piecei0e10:total_sizei5ee", want: Msg{Type: TypeReject}},

		{name: "empty", in: "", wantErr: "empty message"},
		{name: "not a dict", in: "i1e", wantErr: "want a dictionary"},
		{name: "truncated dict", in: "d8:msg_typei0e5:piecei0e", wantErr: "ut_metadata"},
		{name: "missing msg_type", in: "d5:piecei0ee", wantErr: "missing key msg_type"},
		{name: "missing piece", in: "d8:msg_typei0ee", wantErr: "missing key piece"},
		{name: "msg_type string", in: "d8:msg_type1:05:piecei0ee", wantErr: "msg_type"},
		{name: "piece string", in: "d8:msg_typei0e5:piece1:0e", wantErr: "piece"},
		{name: "total_size list", in: "d8:msg_typei1e5:piecei0e10:total_sizeli1eeex", wantErr: "total_size"},
		{name: "negative piece", in: "d8:msg_typei0e5:piecei-1ee", wantErr: "piece -1 out of range"},
		{name: "huge piece", in: "d8:msg_typei0e5:piecei99999999999ee", wantErr: "out of range"},
		{name: "unsorted keys", in: "d5:piecei0e8:msg_typei0ee", wantErr: "ut_metadata"},
		{name: "duplicate key", in: "d8:msg_typei0e8:msg_typei0e5:piecei0ee", wantErr: "ut_metadata"},
		{name: "request with trailing data", in: "d8:msg_typei0e5:piecei0eeXX", wantErr: "2 bytes after the dictionary"},
		{name: "data without total_size", in: "d8:msg_typei1e5:piecei0eeabc", wantErr: "without total_size"},
		{name: "zero total_size", in: "d8:msg_typei1e5:piecei0e10:total_sizei0ee", wantErr: "total_size 0 out of range"},
		{name: "huge total_size", in: "d8:msg_typei1e5:piecei0e10:total_sizei4294967296eeabc", wantErr: "total_size 4294967296 out of range"},
		{name: "piece beyond total_size", in: "d8:msg_typei1e5:piecei1e10:total_sizei3eeabc", wantErr: "piece 1 beyond the 1 pieces"},
		{name: "short last piece", in: "d8:msg_typei1e5:piecei0e10:total_sizei3eeab", wantErr: "has 2 data bytes (from offset 41), want 3"},
		{name: "long last piece", in: "d8:msg_typei1e5:piecei0e10:total_sizei3eeabcd", wantErr: "has 4 data bytes"},
		{name: "short middle piece", in: "d8:msg_typei1e5:piecei0e10:total_sizei20000eeabc", wantErr: "want 16384"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMsg([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMsg(%.60q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMsg(%.60q): %v", tt.in, err)
			}
			if got.Type != tt.want.Type || got.Piece != tt.want.Piece || got.TotalSize != tt.want.TotalSize || !bytes.Equal(got.Data, tt.want.Data) {
				t.Fatalf("ParseMsg(%.60q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseMsgUnknownType(t *testing.T) {
	m, err := ParseMsg([]byte("d8:msg_typei7e5:piecei2ee"))
	if !errors.Is(err, ErrUnknownType) {
		t.Fatalf("got %v, want ErrUnknownType", err)
	}
	if m.Type != 7 || m.Piece != 2 {
		t.Fatalf("got %+v, want type 7 piece 2", m)
	}
}

func TestAppendRoundTrip(t *testing.T) {
	msgs := []Msg{
		{Type: TypeRequest, Piece: 0},
		{Type: TypeReject, Piece: 12},
		{Type: TypeData, Piece: 0, TotalSize: 5, Data: []byte("hello")},
		{Type: TypeData, Piece: 1, TotalSize: BlockSize + 1, Data: []byte{9}},
		{Type: TypeData, Piece: 0, TotalSize: 2 * BlockSize, Data: bytes.Repeat([]byte{1}, BlockSize)},
	}
	for _, m := range msgs {
		b, err := m.Append([]byte("prefix"))
		if err != nil {
			t.Fatalf("Append(%+v): %v", m, err)
		}
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("Append(%+v) lost the prefix: %q", m, b)
		}
		got, err := ParseMsg(b[len("prefix"):])
		if err != nil {
			t.Fatalf("ParseMsg(Append(%+v)): %v", m, err)
		}
		if got.Type != m.Type || got.Piece != m.Piece || got.TotalSize != m.TotalSize || !bytes.Equal(got.Data, m.Data) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
	// The example of BEP 9, byte for byte.
	b, err := Msg{Type: TypeRequest, Piece: 0}.Append(nil)
	if err != nil || string(b) != "d8:msg_typei0e5:piecei0ee" {
		t.Fatalf("request encodes as %q, %v", b, err)
	}
}

func TestAppendRefuses(t *testing.T) {
	bad := []struct {
		m       Msg
		wantErr string
	}{
		{Msg{Type: 3}, "msg_type 3"},
		{Msg{Type: TypeRequest, Piece: -1}, "piece -1"},
		{Msg{Type: TypeRequest, Data: []byte{1}}, "cannot carry data"},
		{Msg{Type: TypeData, TotalSize: 0}, "total_size 0"},
		{Msg{Type: TypeData, TotalSize: MaxSize + 1, Data: make([]byte, BlockSize)}, "out of range"},
		{Msg{Type: TypeData, Piece: 1, TotalSize: 10, Data: []byte("x")}, "beyond the 1 pieces"},
		{Msg{Type: TypeData, TotalSize: 10, Data: []byte("x")}, "has 1 data bytes, want 10"},
	}
	for _, tt := range bad {
		b, err := tt.m.Append([]byte("keep"))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Append(%+v) error %v, want %q", tt.m, err, tt.wantErr)
		}
		if string(b) != "keep" {
			t.Errorf("Append(%+v) changed its input to %q", tt.m, b)
		}
	}
}

func TestPieceLen(t *testing.T) {
	tests := []struct{ size, piece, want int }{
		{1, 0, 1},
		{BlockSize, 0, BlockSize},
		{BlockSize, 1, 0},
		{BlockSize + 1, 1, 1},
		{3*BlockSize - 5, 2, BlockSize - 5},
		{10, -1, 0},
		{0, 0, 0},
	}
	for _, tt := range tests {
		if got := PieceLen(tt.size, tt.piece); got != tt.want {
			t.Errorf("PieceLen(%d, %d) = %d, want %d", tt.size, tt.piece, got, tt.want)
		}
	}
}
