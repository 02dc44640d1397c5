package testpeers

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// Ports handed out by FreePort lie below Linux's default ephemeral range
// (32768-60999), so that no outgoing connection can take one between
// FreePort's check and the program's bind.
const (
	portMin = 20000
	portMax = 32000
)

// FreePort returns a port that is free on 127.0.0.1 for both TCP and UDP
// right now. Programs that cannot bind port 0 and report the result are
// given one of these. It is picked at random, so concurrent tests (in this
// and other test binaries) do not race for the same one.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := portMin + rand.IntN(portMax-portMin)
		if portFree(port) {
			return port
		}
	}
	t.Fatalf("FreePort: no free port found in %d-%d on 127.0.0.1", portMin, portMax)
	return 0
}

// portFree reports whether port can be bound on 127.0.0.1 for TCP and UDP.
func portFree(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}
