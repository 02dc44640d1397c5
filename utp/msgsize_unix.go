//go:build unix

package utp

import (
	"errors"
	"syscall"
)

func isMsgSize(err error) bool { return errors.Is(err, syscall.EMSGSIZE) }
