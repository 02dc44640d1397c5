//go:build linux

package mse

import (
	"context"
	"crypto/rc4"
	"io"
	"testing"

	"github.com/sowerbt/sower/internal/rawsock"
)

// BenchmarkHandshake times a whole handshake, both roles, over loopback
// TCP: the connection is made outside the timing.
func BenchmarkHandshake(b *testing.B) {
	ia := randBytes(1, 68)
	for b.Loop() {
		b.StopTimer()
		x, y := tcpPair(b)
		b.StartTimer()
		ini, acc := handshakePair(context.Background(), x, y, RC4|Plaintext, RC4, ia, true)
		if ini.err != nil || acc.err != nil {
			b.Fatal(ini.err, acc.err)
		}
		b.StopTimer()
		x.Close()
		y.Close()
		b.StartTimer()
	}
}

func BenchmarkRC4(b *testing.B) {
	for _, size := range []int{16 << 10, 512 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			s := newStream([20]byte{1})
			buf := make([]byte, size)
			cpuThroughput(b, size, func() { s.xor(buf) })
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return itoa(n>>20) + "MiB"
	}
	return itoa(n>>10) + "KiB"
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// BenchmarkConn moves data through a handshaken connection over loopback
// TCP with raw system calls (internal/rawsock, as the engine's peers), the writer with WriteInPlace in 512 KiB batches (as the engine's
// writer does), the reader through a 64 KiB buffer (as its decoder does),
// and reports the process's CPU time per GiB moved: both ends, so the
// RC4 figure includes one encryption and one decryption of every byte.
//
// "rc4-write" sends with Write instead, which encrypts into a buffer of the
// Conn's (128 KiB pieces): the cost of not handing the batch buffer over.
func BenchmarkConn(b *testing.B) {
	for _, name := range []string{"plaintext", "rc4", "rc4-write"} {
		m := RC4
		if name == "plaintext" {
			m = Plaintext
		}
		write := func(c *Conn, p []byte) (int, error) { return c.WriteInPlace(p) }
		if name == "rc4-write" {
			write = func(c *Conn, p []byte) (int, error) { return c.Write(p) }
		}
		b.Run(name, func(b *testing.B) {
			x, y := tcpPair(b)
			ini, acc := handshakePair(context.Background(), rawsock.Wrap(x), rawsock.Wrap(y), m, m, nil, false)
			if ini.err != nil || acc.err != nil {
				b.Fatal(ini.err, acc.err)
			}
			const chunk = 512 << 10
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, 64<<10)
				_, err := io.CopyBuffer(io.Discard, readerOnly{acc.c}, buf)
				done <- err
			}()
			out := make([]byte, chunk)
			b.SetBytes(chunk)
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := write(ini.c, out); err != nil {
					b.Fatal(err)
				}
			}
			x.Close()
			<-done
			cpu := cpuTime() - cpu0
			b.ReportMetric(cpu.Seconds()/(float64(b.N)*chunk/(1<<30)), "cpu-s/GiB")
		})
	}
}

// readerOnly hides WriteTo, so io.CopyBuffer reads through Read into the
// given buffer.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

func BenchmarkRC4Generic(b *testing.B) {
	s := newStream([20]byte{1})
	buf := make([]byte, 16<<10)
	cpuThroughput(b, len(buf), func() { xorKeyStreamGeneric(s, buf, buf) })
}

func BenchmarkCryptoRC4(b *testing.B) {
	c, _ := rc4.NewCipher(make([]byte, 20))
	buf := make([]byte, 16<<10)
	cpuThroughput(b, len(buf), func() { c.XORKeyStream(buf, buf) })
}
