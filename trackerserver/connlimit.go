package trackerserver

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// connLimit caps the HTTP connections a server holds open, on the announce
// path and net/http's alike. A connection is idle while it waits for, or
// is still receiving, a request head; it is busy while a request is
// answered. A new connection beyond the cap closes the connection that has
// been idle longest, so that a crowd of silent or slow clients (slowloris)
// cannot lock real ones out: they are the oldest idle ones. Only when
// every open connection is busy is the new one refused.
type connLimit struct {
	max int

	mu         sync.Mutex
	open       int
	head, tail *limitedConn // idle connections, longest idle first

	evicted, refused atomic.Uint64
}

// limitedConn is one connection counted by a connLimit.
type limitedConn struct {
	c          net.Conn // closed when the connection is evicted
	prev, next *limitedConn
	idle       bool // on the idle list
	gone       bool // evicted or released: no longer counted
}

func newConnLimit(max int) *connLimit { return &connLimit{max: max} }

// admit counts a new connection, idle, evicting the longest-idle one if
// the cap is reached. It returns nil, and counts a refusal, when every
// open connection is busy.
func (l *connLimit) admit(c net.Conn) *limitedConn {
	l.mu.Lock()
	var victim *limitedConn
	if l.open >= l.max {
		victim = l.head
		if victim == nil {
			l.mu.Unlock()
			l.refused.Add(1)
			return nil
		}
		l.unlink(victim)
		victim.gone = true
		l.open--
	}
	e := &limitedConn{c: c}
	l.open++
	l.pushIdle(e)
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		victim.c.Close()
	}
	return e
}

// busy marks e as answering a request, out of eviction's reach. It
// reports false if e was already evicted: the connection is closed.
func (l *connLimit) busy(e *limitedConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.gone {
		return false
	}
	if e.idle {
		l.unlink(e)
	}
	return true
}

// idle marks e as waiting for its next request.
func (l *connLimit) idle(e *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !e.gone && !e.idle {
		l.pushIdle(e)
	}
}

// release stops counting e, whose connection is closed or no longer
// served; it may be called more than once.
func (l *connLimit) release(e *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.gone {
		return
	}
	if e.idle {
		l.unlink(e)
	}
	e.gone = true
	l.open--
}

// count returns the connections counted now.
func (l *connLimit) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

func (l *connLimit) pushIdle(e *limitedConn) {
	e.idle = true
	e.prev, e.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *connLimit) unlink(e *limitedConn) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next, e.idle = nil, nil, false
}

// trackConnState follows net/http's connections (handed over by the
// announce path) under Config.MaxConns.
func (s *Server) trackConnState(c net.Conn, st http.ConnState) {
	bc, ok := c.(*bufferedConn)
	if !ok || bc.lim == nil {
		return
	}
	switch st {
	case http.StateActive:
		s.conns.busy(bc.lim)
	case http.StateIdle:
		s.conns.idle(bc.lim)
	case http.StateHijacked, http.StateClosed:
		s.conns.release(bc.lim)
	}
}
