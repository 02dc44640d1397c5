package main

import "syscall"

// procAttr puts a child in its own process group, so stop reaches its
// children too, and kills it if the benchmark dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
