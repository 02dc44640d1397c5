package peerwire

import (
	"bufio"
	"fmt"
	"io"
)

// Writer buffers outgoing messages. Messages are only sent on Flush (or
// when the buffer fills), so a caller can batch, say, a have and several
// requests into one TCP segment. Payloads are written straight from the
// caller's slice without an intermediate copy. A Writer is not safe for
// concurrent use; one goroutine per connection owns it.
type Writer struct {
	w   *bufio.Writer
	hdr [17]byte // the longest header: 4 length + 1 id + 3*4 fields
}

// NewWriter returns a Writer with a 64 KiB buffer, enough for a few 16 KiB
// blocks.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10)}
}

// WriteMessage buffers m. Encoding follows Message.AppendTo.
func (w *Writer) WriteMessage(m Message) error {
	if _, err := w.w.Write(m.appendHeader(w.hdr[:0])); err != nil {
		return fmt.Errorf("peerwire: writing %s: %w", m.name(), err)
	}
	if m.hasPayload() && len(m.Payload) > 0 {
		if _, err := w.w.Write(m.Payload); err != nil {
			return fmt.Errorf("peerwire: writing %s payload: %w", m.name(), err)
		}
	}
	return nil
}

// Flush sends everything buffered.
func (w *Writer) Flush() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("peerwire: flushing: %w", err)
	}
	return nil
}

// Buffered is the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return w.w.Buffered() }

// name describes m for error messages.
func (m Message) name() string {
	if m.KeepAlive {
		return "keep-alive"
	}
	return m.ID.String()
}
