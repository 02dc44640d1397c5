//go:build linux

package wanlab

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"time"
)

// Link is one direction of a host's access link, as the router applies it.
// The zero Link passes packets at once, unlimited.
type Link struct {
	// Rate in bits per second of IP packets (headers included); 0 is
	// unlimited. Packets leave one after another at this rate, so the
	// bucket holds one packet: there is no burst above the rate.
	Rate int64
	// Delay is the one-way propagation delay added after the rate.
	Delay time.Duration
	// Jitter spreads each packet's delay uniformly over Delay ± Jitter
	// without reordering packets (a later packet never overtakes an
	// earlier one, as on a real access link).
	Jitter time.Duration
	// Loss is the probability in [0, 1) that a packet is dropped after it
	// used the link's capacity.
	Loss float64
	// Queue is how many bytes the link holds, the packet being sent
	// included, before it drops arriving packets (tail drop; bufferbloat
	// when large). 0 means DefaultQueue.
	Queue int
}

// DefaultQueue returns the queue a Link gets when it sets none: 50 ms at
// its rate, and at least 32 full-size packets.
func DefaultQueue(rate int64) int {
	return max(int(rate/8/20), 32*1500)
}

// Counters are what one direction of a link carried, in IP packets and
// bytes.
type Counters struct {
	Packets    int64 // delivered
	Bytes      int64 // delivered
	LossDrops  int64 // dropped by the random loss
	QueueDrops int64 // dropped because the queue was full
}

// pipe is the state of one Link: when its serialiser frees up and when
// its last packet arrives (to keep order under jitter).
type pipe struct {
	link  Link
	queue int
	rng   *rand.Rand
	busy  time.Duration // the serialiser is busy until then (router clock)
	last  time.Duration // delivery time of the previous packet
	c     Counters
}

func newPipe(l Link, seed1, seed2 uint64) *pipe {
	q := l.Queue
	if q <= 0 {
		q = DefaultQueue(l.Rate)
	}
	return &pipe{link: l, queue: q, rng: rand.New(rand.NewPCG(seed1, seed2))}
}

// set changes the link from now on.
func (p *pipe) set(l Link) {
	p.link = l
	p.queue = l.Queue
	if p.queue <= 0 {
		p.queue = DefaultQueue(l.Rate)
	}
}

// admit takes a packet of size bytes arriving at time at (router clock)
// and returns when it comes out of the far end, or false when the link
// drops it. Calls must come in the order of their arrival times, as the
// router makes them.
func (p *pipe) admit(at time.Duration, size int) (time.Duration, bool) {
	depart := at
	if p.link.Rate > 0 {
		start := max(at, p.busy)
		// Bytes still waiting in front of this packet, at the rate.
		if backlog := int64(start-at) * p.link.Rate / 8 / int64(time.Second); backlog+int64(size) > int64(p.queue) {
			p.c.QueueDrops++
			return 0, false
		}
		depart = start + time.Duration(int64(size)*8*int64(time.Second)/p.link.Rate)
		p.busy = depart
	}
	if p.link.Loss > 0 && p.rng.Float64() < p.link.Loss {
		p.c.LossDrops++
		return 0, false
	}
	arrive := depart + p.link.Delay
	if j := p.link.Jitter; j > 0 {
		arrive += time.Duration(p.rng.Int64N(int64(2*j)+1)) - j
	}
	arrive = max(arrive, p.last, depart)
	p.last = arrive
	p.c.Packets++
	p.c.Bytes += int64(size)
	return arrive, true
}

// event is a packet waiting in the router: stage 0 is on the sender's
// uplink, due to enter the receiver's downlink at at; stage 1 is on the
// downlink, due to be written to the receiver at at.
type event struct {
	at    time.Duration
	seq   uint64
	stage int
	pkt   *packet
	from  *port
	to    *port
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = event{}
	*h = old[:len(old)-1]
	return e
}

// packet is one IP packet in a pooled buffer.
type packet struct {
	buf []byte
	n   int
}

// slack is how early the router may deliver a packet to batch it with
// others (each wake-up of the scheduler costs more than a packet).
const slack = 200 * time.Microsecond

// maxPacket bounds what a TUN device hands over: the lab sets every wan0
// to an MTU of 1500 and asks for no offloads, so no packet is larger. (A
// buffer per packet in flight: at 100 Mbit/s and 100 ms that is a
// thousand of them, so they are kept small.)
const maxPacket = 2048

// core is the router's scheduler: one heap of packets in flight over every
// link, worked by one goroutine, so each pipe sees its packets in arrival
// order. Readers (one per port) add packets under mu.
type core struct {
	base time.Time
	mu   sync.Mutex
	q    eventHeap
	seq  uint64
	wake chan struct{}
	pool sync.Pool
	// writes collects the packets due now, to write them outside mu.
	writes []event
	// late sums how late packets were written, lateMax the worst: the
	// lab's own error, which grows when the machine cannot keep up.
	late, lateMax time.Duration
	written       int64
	// pairs counts the bytes between each pair of ports that made it
	// through both links (as the downlink's Counters do).
	pairs map[[2]*port]int64
}

func newCore() *core {
	c := &core{base: time.Now(), wake: make(chan struct{}, 1), pairs: map[[2]*port]int64{}}
	c.pool.New = func() any { return &packet{buf: make([]byte, maxPacket)} }
	return c
}

func (c *core) now() time.Duration { return time.Since(c.base) }

// push queues an event; the caller holds mu.
func (c *core) push(e event) {
	c.seq++
	e.seq = c.seq
	wasFirst := len(c.q) == 0 || e.at < c.q[0].at
	heap.Push(&c.q, e)
	if wasFirst {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// run moves packets through their downlinks and writes them out when due,
// until stop is closed.
func (c *core) run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		now := c.now()
		// Packets due within the slack go now too: one wake-up then
		// serves several, at a cost of at most slack in their timing.
		for len(c.q) > 0 && c.q[0].at <= now+slack {
			e := heap.Pop(&c.q).(event)
			if e.stage == 0 {
				// Virtual arrival time, so a late scheduler does not
				// shift the downlink's clock.
				at, ok := e.to.down.admit(e.at, e.pkt.n)
				if !ok {
					c.pool.Put(e.pkt)
					continue
				}
				c.pairs[[2]*port{e.from, e.to}] += int64(e.pkt.n)
				e.at, e.stage = at, 1
				c.seq++
				e.seq = c.seq
				heap.Push(&c.q, e)
				continue
			}
			if l := now - e.at; l > 0 {
				c.late += l
				c.lateMax = max(c.lateMax, l)
			}
			c.written++
			c.writes = append(c.writes, e)
		}
		next := time.Hour
		if len(c.q) > 0 {
			next = c.q[0].at - slack - now
		}
		writes := c.writes
		c.writes = nil
		c.mu.Unlock()
		for _, e := range writes {
			e.to.write(e.pkt.buf[:e.pkt.n])
			c.pool.Put(e.pkt)
		}
		c.mu.Lock()
		if c.writes == nil {
			c.writes = writes[:0]
		}
		c.mu.Unlock()
		if len(writes) > 0 {
			continue // time passed while writing
		}
		timer.Reset(next)
		select {
		case <-stop:
			return
		case <-c.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
	}
}
