//go:build !linux

package main

import (
	"fmt"
	"os"
)

// The lab needs Linux network namespaces and TUN devices.
func main() {
	fmt.Fprintln(os.Stderr, "wan: the WAN lab runs on Linux only")
	os.Exit(1)
}
