// Package rawsock reads and writes TCP connections with raw system calls.
//
// A socket from package net is non-blocking, so read(2) and write(2) on it
// never block: the runtime's poller does the waiting. Yet net makes them
// as ordinary system calls, and the runtime treats each as one that may
// block: its monitor thread takes the processor away from a call that
// lasts more than 20 µs (a 512 KiB write to a loopback peer does) and
// hands it to another thread, and the caller has to get one back after.
// On a busy transfer that is tens of thousands of thread hand-offs per
// GiB. Wrap makes the same calls raw, so the goroutine keeps its
// processor; waiting for the socket, and deadlines, still go through the
// poller, and everything else is the *net.TCPConn's. The engine wraps its
// peer connections, the tracker the connections of its announce path.
package rawsock

import (
	"net"
)

// Wrap returns c with raw reads and writes when c is a *net.TCPConn on a
// system where that is done (Linux), and c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	if rc := wrap(tc); rc != nil {
		return rc
	}
	return c
}
