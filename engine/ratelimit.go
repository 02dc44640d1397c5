package engine

import (
	"context"
	"net"

	"golang.org/x/time/rate"
)

// NewLimiter returns a token bucket for bytesPerSecond, for
// Config.UploadLimit and DownloadLimit. One limiter may be shared by many
// torrents to make a global limit. The burst is about an eighth of a
// second of traffic, at least one block, so short bursts are smooth and
// the average holds.
func NewLimiter(bytesPerSecond int64) *rate.Limiter {
	burst := int(min(max(bytesPerSecond/8, 2*blockSize), 4<<20))
	return rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
}

// limitedConn applies rate limits at the socket, so protocol overhead
// counts against them as users expect.
type limitedConn struct {
	net.Conn
	ctx      context.Context
	up, down *rate.Limiter
}

func (c *limitedConn) Read(b []byte) (int, error) {
	if c.down != nil && len(b) > c.down.Burst() {
		b = b[:c.down.Burst()]
	}
	n, err := c.Conn.Read(b)
	if n > 0 && c.down != nil {
		// Waiting after the read delays the next one, which is what slows
		// the sender: TCP's window closes while we wait.
		if werr := c.down.WaitN(c.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

func (c *limitedConn) Write(b []byte) (int, error) { return c.write(b, c.Conn.Write) }

// WriteInPlace is Write through the wrapped connection's WriteInPlace
// when it has one (see inPlaceWriter).
func (c *limitedConn) WriteInPlace(b []byte) (int, error) {
	return c.write(b, func(b []byte) (int, error) { return writeInPlace(c.Conn, b) })
}

func (c *limitedConn) write(b []byte, write func([]byte) (int, error)) (int, error) {
	if c.up == nil {
		return write(b)
	}
	written := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), c.up.Burst())]
		if err := c.up.WaitN(c.ctx, len(chunk)); err != nil {
			return written, err
		}
		n, err := write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}
