package peerwire

import (
	"crypto/rand"
	"strconv"
	"strings"
)

// peerIDPrefix identifies Sower 0.1.0.0 in the Azureus style of BEP 20.
const peerIDPrefix = "-SW0100-"

// NewPeerID returns a fresh peer id: the Sower client prefix followed by
// 12 random bytes. The random part comes from crypto/rand because peer ids
// double as the identity a tracker keys its peer list on; a predictable id
// would let others impersonate us there.
func NewPeerID() [20]byte {
	var id [20]byte
	copy(id[:], peerIDPrefix)
	rand.Read(id[len(peerIDPrefix):]) // never fails since Go 1.24
	return id
}

// ClientName makes a best-effort guess at the client software and version
// that produced a peer id, for display and logs. It understands the
// Azureus style ("-qB4520-"), the Mainline style ("M4-3-6--"), aria2
// ("A2-1-36-0-") and the Shad0w style ("T03I-----"), and returns "unknown"
// for anything else. Peer ids are chosen by the peer, so the result is
// only a hint.
func ClientName(id [20]byte) string {
	if name, ok := azureusStyle(id); ok {
		return name
	}
	if name, ok := aria2Style(id); ok {
		return name
	}
	if name, ok := mainlineStyle(id); ok {
		return name
	}
	if name, ok := shadowStyle(id); ok {
		return name
	}
	return "unknown"
}

// azureusStyle decodes "-XXvvvv-": two client letters and four version
// characters, each a digit or a letter standing for 10 and up.
func azureusStyle(id [20]byte) (string, bool) {
	if id[0] != '-' || id[7] != '-' {
		return "", false
	}
	name := azureusClient(string(id[1:3]))
	if name == "" {
		return "", false
	}
	var v [4]int
	for i := range v {
		d, ok := versionDigit(id[3+i])
		if !ok {
			return "", false
		}
		v[i] = d
	}
	var ver string
	switch string(id[1:3]) {
	case "TR":
		ver = transmissionVersion(id[3:7], v)
	default:
		ver = joinVersion(v[:])
	}
	return name + " " + ver, true
}

// transmissionVersion handles Transmission's two schemes: before 4.0 the
// id holds X.YZ (so "3000" is 3.00), from 4.0 on it holds X.Y.Z.
func transmissionVersion(raw []byte, v [4]int) string {
	if v[0] >= 4 {
		return joinVersion(v[:3])
	}
	s := strconv.Itoa(v[0]) + "." + string(raw[1:3])
	if raw[3] == 'Z' || raw[3] == 'X' {
		s += "+" // development build after that release
	}
	return s
}

// joinVersion renders version components as "a.b.c", dropping a zero
// fourth (build) component that most clients leave unused.
func joinVersion(v []int) string {
	if len(v) == 4 && v[3] == 0 {
		v = v[:3]
	}
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(x))
	}
	return b.String()
}

// versionDigit decodes one version character: 0-9, then A-Z for 10-35 as
// libtorrent and Deluge use them.
func versionDigit(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// azureusClient maps the BEP 20 two-letter codes of widely deployed
// clients to names; codes of long-dead clients are left out.
func azureusClient(code string) string {
	switch code {
	case "SW":
		return "Sower"
	case "qB":
		return "qBittorrent"
	case "TR":
		return "Transmission"
	case "lt":
		return "libTorrent"
	case "LT":
		return "libtorrent"
	case "DE":
		return "Deluge"
	case "UT":
		return "µTorrent"
	case "UW":
		return "µTorrent Web"
	case "UM":
		return "µTorrent Mac"
	case "BT":
		return "BitTorrent"
	case "AZ":
		return "Azureus"
	case "BC":
		return "BitComet"
	case "KT":
		return "KTorrent"
	case "BI":
		return "BiglyBT"
	case "FD":
		return "Free Download Manager"
	case "FW":
		return "FrostWire"
	case "MO":
		return "MonoTorrent"
	case "WW":
		return "WebTorrent"
	case "WD":
		return "WebTorrent Desktop"
	case "XL":
		return "Xunlei"
	case "SD":
		return "Thunder"
	case "VG":
		return "Vagaa"
	case "BF":
		return "Bitflu"
	case "HL":
		return "Halite"
	case "KG":
		return "KGet"
	case "PI":
		return "PicoTorrent"
	case "SZ":
		return "Shareaza"
	case "CD":
		return "Enhanced CTorrent"
	case "CT":
		return "CTorrent"
	case "LW":
		return "LimeWire"
	case "BG":
		return "BTG"
	case "AG", "A~":
		return "Ares"
	case "ML":
		return "MLdonkey"
	case "GR":
		return "GetRight"
	case "RZ":
		return "RezTorrent"
	case "TL":
		return "Tribler"
	case "HN":
		return "Hydranode"
	case "ST":
		return "SymTorrent"
	case "TT":
		return "TuoTu"
	case "QD":
		return "QQDownload"
	case "PD":
		return "Pando"
	case "MG":
		return "MediaGet"
	}
	return ""
}

// aria2Style decodes "A2-1-36-0-": dash-separated decimal components.
func aria2Style(id [20]byte) (string, bool) {
	if string(id[:3]) != "A2-" {
		return "", false
	}
	parts, ok := dashedVersion(id[3:], 3)
	if !ok {
		return "", false
	}
	return "aria2 " + strings.Join(parts, "."), true
}

// mainlineStyle decodes "M4-3-6--": the letter M then dash-separated
// decimal components ending at a double dash.
func mainlineStyle(id [20]byte) (string, bool) {
	if id[0] != 'M' {
		return "", false
	}
	parts, ok := dashedVersion(id[1:], 3)
	if !ok {
		return "", false
	}
	return "Mainline " + strings.Join(parts, "."), true
}

// dashedVersion reads exactly n decimal components, each followed by '-'.
func dashedVersion(b []byte, n int) ([]string, bool) {
	parts := make([]string, 0, n)
	start := 0
	for i := 0; i < len(b) && len(parts) < n; i++ {
		if b[i] == '-' {
			if i == start || i-start > 3 {
				return nil, false
			}
			parts = append(parts, string(b[start:i]))
			start = i + 1
			continue
		}
		if b[i] < '0' || b[i] > '9' {
			return nil, false
		}
	}
	return parts, len(parts) == n
}

// shadowStyle decodes one client letter, up to five version characters
// padded with '-', then "---".
func shadowStyle(id [20]byte) (string, bool) {
	var name string
	switch id[0] {
	case 'A':
		name = "ABC"
	case 'O':
		name = "Osprey Permaseed"
	case 'Q':
		name = "BTQueue"
	case 'R':
		name = "Tribler"
	case 'S':
		name = "Shadow"
	case 'T':
		name = "BitTornado"
	case 'U':
		name = "UPnP NAT Bit Torrent"
	default:
		return "", false
	}
	if string(id[6:9]) != "---" {
		return "", false
	}
	var v []int
	for _, c := range id[1:6] {
		if c == '-' {
			break
		}
		d, ok := shadowDigit(c)
		if !ok {
			return "", false
		}
		v = append(v, d)
	}
	if len(v) == 0 {
		return "", false
	}
	return name + " " + joinVersion(v), true
}

// shadowDigit decodes the Shad0w alphabet 0-9 A-Z a-z '.'.
func shadowDigit(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10, true
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 36, true
	case c == '.':
		return 62, true
	}
	return 0, false
}
