//go:build !unix

package testpeers

import (
	"os"
	"syscall"
)

// newProcAttr has nothing to add where process groups do not exist.
func newProcAttr() *syscall.SysProcAttr { return nil }

// terminateGroup can only kill the program itself here.
func terminateGroup(p *os.Process) { _ = p.Kill() }

// killGroup can only kill the program itself here.
func killGroup(p *os.Process) { _ = p.Kill() }
