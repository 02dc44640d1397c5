//go:build !linux

package main

import "syscall"

// procAttr puts a child in its own process group, so stop reaches its
// children too.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
