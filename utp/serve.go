package utp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ReadBufferSize is the buffer a Socket's owner reads datagrams into: the
// largest datagram a Socket tells its peers it reads.
const ReadBufferSize = 65536

// Serve reads datagrams from pc until reading fails (pc closed): uTP
// packets go to s, others to other (nil drops them), for example the DHT
// sharing the socket. other must not keep b. It returns nil once pc is
// closed. On Linux it reads a *net.UDPConn in batches (recvmmsg) and
// sends the acks a batch left pending once the socket is drained.
func Serve(pc net.PacketConn, s *Socket, other func(b []byte, from netip.AddrPort)) error {
	uc, _ := pc.(*net.UDPConn)
	if uc != nil {
		if ok, err := serveBatched(uc, s, other); ok {
			return err
		}
	}
	buf := make([]byte, ReadBufferSize)
	for {
		var (
			n    int
			from netip.AddrPort
			err  error
		)
		if uc != nil {
			n, from, err = uc.ReadFromUDPAddrPort(buf)
		} else {
			var a net.Addr
			n, a, err = pc.ReadFrom(buf)
			if ua, ok := a.(*net.UDPAddr); ok {
				from = ua.AddrPort()
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("utp: read: %w", err)
			}
			continue // ICMP errors surface as read errors on some systems: keep going
		}
		if !s.HandlePacket(buf[:n], from) && other != nil {
			other(buf[:n], from)
		}
	}
}

// Listen opens a UDP socket on address ("udp", "udp4" or "udp6" network)
// and returns a Socket that owns it: Close also closes the UDP socket. A
// program that shares its UDP socket with the DHT uses NewSocket and
// Serve instead.
func Listen(network, address string, cfg Config) (*Socket, error) {
	pc, err := net.ListenPacket(network, address)
	if err != nil {
		return nil, fmt.Errorf("utp: listen: %w", err)
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("utp: listen: %s is not a UDP network", network)
	}
	SetSocketBuffers(uc, 16<<20)
	s := NewSocket(uc, cfg)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := Serve(uc, s, nil); err != nil {
			s.log.Warn("utp: serve", "err", err)
		}
	}()
	s.onClose = func() {
		uc.Close()
		<-served
	}
	return s, nil
}
