//go:build linux

package wanlab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// Command returns a command that runs in the host's namespace (through
// `ip netns exec`, so the program sees only the host's network).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
}

// Dial connects from inside the host, as net.Dialer.DialContext does.
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(h.ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen listens inside the host, as net.Listen does.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(h.ns, func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket inside the host, as net.ListenPacket
// does.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := inNetns(h.ns, func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// ListenMulticastUDP joins a multicast group on the host's interface ifi
// (by name, e.g. "lan0"), as net.ListenMulticastUDP does.
func (h *Host) ListenMulticastUDP(ifname string, group *net.UDPAddr) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := inNetns(h.ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err = net.ListenMulticastUDP("udp4", ifi, group)
		return err
	})
	return c, err
}

// output runs a program and returns its standard output.
func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.String(), nil
}
