//go:build unix && !linux

package testpeers

import (
	"os"
	"syscall"
)

// newProcAttr puts the program in its own process group, so that stopping it
// also stops anything it started.
func newProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// terminateGroup asks every process in p's group to exit.
func terminateGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGTERM) }

// killGroup kills every process left in p's group.
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }
