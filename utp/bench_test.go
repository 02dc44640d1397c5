package utp

import (
	"context"
	"net"
	"testing"
	"time"
)

// benchPair moves b.N times 64 MiB from one end of a connection to the
// other on 127.0.0.1, reporting MB/s and the CPU seconds both ends spent
// per GiB.
func benchPair(b *testing.B, src, dst net.Conn) {
	const chunk = 256 << 10
	const per = 64 << 20
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	b.SetBytes(per)
	b.ResetTimer()
	cpu0 := CPUTime()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for range b.N {
			for sent := 0; sent < per; sent += chunk {
				if _, err := src.Write(buf); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	rbuf := make([]byte, 1<<20)
	total := int64(b.N) * per
	for got := int64(0); got < total; {
		n, err := dst.Read(rbuf)
		if err != nil {
			b.Fatalf("read after %d bytes: %v", got, err)
		}
		got += int64(n)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	cpu := CPUTime() - cpu0
	b.ReportMetric(cpu.Seconds()/(float64(total)/(1<<30)), "cpu-s/GiB")
	b.ReportMetric(float64(total)/elapsed.Seconds()/1e6, "MB/s")
}

func BenchmarkLoopbackPair(b *testing.B) {
	client, server := loopbackPair(b, Config{})
	defer client.Close()
	benchPair(b, client, server)
	st := client.Stats()
	b.Logf("packet size %d, window %d, rtt %v", st.PacketSize, st.Window, st.RTT)
}

// BenchmarkLoopbackPairEthernet is the pair with datagrams capped at
// Ethernet's 1472 bytes, as on most real paths: per-packet costs dominate.
func BenchmarkLoopbackPairEthernet(b *testing.B) {
	client, server := loopbackPair(b, Config{MaxPacketSize: 1472})
	defer client.Close()
	benchPair(b, client, server)
	st := client.Stats()
	b.Logf("packet size %d, window %d, rtt %v", st.PacketSize, st.Window, st.RTT)
}

// BenchmarkLoopbackTCPPair is the same over TCP, for comparison.
func BenchmarkLoopbackTCPPair(b *testing.B) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	client, err := d.DialContext(ctx, "tcp4", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	benchPair(b, client, server)
}
