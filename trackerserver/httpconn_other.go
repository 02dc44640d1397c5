//go:build !linux

package trackerserver

import "net"

// rawConnIO is Linux-only (see httpconn_linux.go); elsewhere connections
// are read and written through net.Conn.
type rawConnIO struct{}

func newRawConnIO(net.Conn) *rawConnIO { return nil }

// read is c.Read.
func (cs *connState) read(p []byte) (int, error) { return cs.c.Read(p) }

// write is c.Write of all of b.
func (cs *connState) write(b []byte) error {
	_, err := cs.c.Write(b)
	return err
}
