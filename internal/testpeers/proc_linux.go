package testpeers

import (
	"os"
	"syscall"
)

// newProcAttr puts the program in its own process group, so that stopping it
// also stops anything it started, and has the kernel kill it should the test
// binary die without running its cleanups (a panic or a -timeout).
func newProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// terminateGroup asks every process in p's group to exit.
func terminateGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGTERM) }

// killGroup kills every process left in p's group.
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }
