//go:build !linux

package engine

import (
	"net"
	"os"
)

// fileSender is Linux-only; elsewhere uploads are read and written.
type fileSender struct{}

func newFileSender(net.Conn) *fileSender                    { return nil }
func (*fileSender) setCork(bool) error                      { return nil }
func (*fileSender) send([]byte, *os.File, int64, int) error { return nil }
