package peerwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReserved(t *testing.T) {
	var r Reserved
	if r.SupportsFast() || r.SupportsExtended() || r.SupportsDHT() {
		t.Fatal("zero Reserved claims support")
	}
	r.SetFast()
	r.SetExtended()
	r.SetDHT()
	want := Reserved{0, 0, 0, 0, 0, 0x10, 0, 0x05}
	if r != want {
		t.Fatalf("reserved %x, want %x", r, want)
	}
	if !r.SupportsFast() || !r.SupportsExtended() || !r.SupportsDHT() {
		t.Fatal("set bits not reported")
	}
	only := Reserved{7: 0x04}
	if !only.SupportsFast() || only.SupportsDHT() || only.SupportsExtended() {
		t.Fatal("fast bit read as another bit")
	}
}

func testHandshake() Handshake {
	h := Handshake{PeerID: NewPeerID()}
	h.Reserved.SetFast()
	h.Reserved.SetExtended()
	for i := range h.InfoHash {
		h.InfoHash[i] = byte(i * 7)
	}
	return h
}

func TestHandshakeRoundTrip(t *testing.T) {
	h := testHandshake()
	var buf bytes.Buffer
	if err := WriteHandshake(&buf, h); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != HandshakeLen || buf.Bytes()[0] != 19 || !bytes.HasPrefix(buf.Bytes()[1:], []byte(Protocol)) {
		t.Fatalf("wire form %q", buf.Bytes())
	}
	got, err := ReadHandshake(iotest.OneByteReader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("got %+v, want %+v", got, h)
	}
}

func TestHandshakeTwoStep(t *testing.T) {
	h := testHandshake()
	var buf bytes.Buffer
	WriteHandshake(&buf, h)
	buf.WriteString("rest")
	res, ih, err := ReadHandshakeStart(&buf)
	if err != nil || res != h.Reserved || ih != h.InfoHash {
		t.Fatalf("start: %x %x %v", res, ih, err)
	}
	if buf.Len() != 24 {
		t.Fatalf("start consumed %d bytes, want 48", HandshakeLen+4-buf.Len())
	}
	id, err := ReadPeerID(&buf)
	if err != nil || id != h.PeerID {
		t.Fatalf("peer id %q %v", id, err)
	}
	if buf.String() != "rest" {
		t.Fatalf("read past handshake: left %q", buf.String())
	}
}

func TestHandshakeErrors(t *testing.T) {
	h := testHandshake()
	var good bytes.Buffer
	WriteHandshake(&good, h)
	g := good.Bytes()

	badProto := append([]byte(nil), g...)
	copy(badProto[1:], "BitTorrent protocoL")

	tests := []struct {
		name  string
		in    []byte
		proto string // want a ProtocolError with this text, or
		is    error  // an error matching this
	}{
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), "peerwire: handshake protocol length 71 at offset 0, want 19", nil},
		{"bad string", badProto, `peerwire: handshake protocol "BitTorrent protocoL" at offset 1, want "BitTorrent protocol"`, nil},
		{"empty", nil, "", io.EOF},
		{"short start", g[:30], "", io.ErrUnexpectedEOF},
		{"short peer id", g[:60], "", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadHandshake(bytes.NewReader(tt.in))
			if tt.proto != "" {
				var pe *ProtocolError
				if !errors.As(err, &pe) || err.Error() != tt.proto {
					t.Fatalf("error %v, want ProtocolError %q", err, tt.proto)
				}
				return
			}
			if !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
		})
	}
}

func TestWriteHandshakeError(t *testing.T) {
	err := WriteHandshake(failWriter{}, testHandshake())
	if err == nil || !strings.Contains(err.Error(), "writing handshake") {
		t.Fatalf("error %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestNewPeerID(t *testing.T) {
	a, b := NewPeerID(), NewPeerID()
	if string(a[:8]) != "-SW0100-" {
		t.Fatalf("prefix %q", a[:8])
	}
	if a == b {
		t.Fatal("two peer ids are equal")
	}
	if got := ClientName(a); got != "Sower 0.1.0" {
		t.Fatalf("ClientName(own id) = %q", got)
	}
}

func TestClientName(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"-qB4520-", "qBittorrent 4.5.2"},
		{"-TR3000-", "Transmission 3.00"},
		{"-TR2840-", "Transmission 2.84"},
		{"-TR133Z-", "Transmission 1.33+"},
		{"-TR4060-", "Transmission 4.0.6"},
		{"-lt0D80-", "libTorrent 0.13.8"},
		{"-LT2090-", "libtorrent 2.0.9"},
		{"-DE13D0-", "Deluge 1.3.13"},
		{"-UT3550-", "µTorrent 3.5.5"},
		{"-AZ2060-", "Azureus 2.0.6"},
		{"-SW0100-", "Sower 0.1.0"},
		{"-SW0101-", "Sower 0.1.0.1"},
		{"A2-1-36-0-", "aria2 1.36.0"},
		{"M4-3-6--", "Mainline 4.3.6"},
		{"M4-20-8-", "Mainline 4.20.8"},
		{"S58B-----", "Shadow 5.8.11"},
		{"T03I-----", "BitTornado 0.3.18"},
		{"-ZZ1000-", "unknown"},  // unknown client code
		{"-qB4$20-", "unknown"},  // bad version character
		{"-qB45201", "unknown"},  // missing trailing dash
		{"M4-3-6x-", "unknown"},  // bad mainline digit
		{"M4-3", "unknown"},      // too few components
		{"A2-1--0-", "unknown"},  // empty component
		{"T-----x--", "unknown"}, // no version
		{"", "unknown"},
	}
	for _, tt := range tests {
		var id [20]byte
		copy(id[:], tt.prefix)
		if got := ClientName(id); got != tt.want {
			t.Errorf("ClientName(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }
