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

func (c *limitedConn) Write(b []byte) (int, error) {
	if c.up == nil {
		return c.Conn.Write(b)
	}
	written := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), c.up.Burst())]
		if err := c.up.WaitN(c.ctx, len(chunk)); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}
