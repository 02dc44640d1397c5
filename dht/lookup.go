package dht

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
)

// Alpha is the number of queries a lookup keeps in flight.
const Alpha = 3

// Lookup bounds: candidates beyond maxCandidates (the farthest unqueried
// ones) are forgotten, and at most maxPeersSeen distinct peers are
// reported by one get_peers lookup.
const (
	maxCandidates = 8 * K
	maxPeersSeen  = 4096
)

type candState uint8

const (
	candNew candState = iota
	candInFlight
	candResponded
	candFailed
)

type candidate struct {
	c     contact
	hasID bool // bootstrap addresses have no known id until they answer
	state candState
	round int // 1 for seeds, parent's round + 1 for nodes learned from replies
	token string
}

// LookupStats describes one finished lookup.
type LookupStats struct {
	Queries   int // queries sent
	Responses int // replies received
	Rounds    int // longest referral chain to a node that answered (see lookup)
	Peers     int // distinct peers found (get_peers only)
}

// lookupResult is the outcome of an iterative lookup.
type lookupResult struct {
	LookupStats
	closest []*candidate // up to K nodes closest to the target that answered
}

// lookup runs an iterative find_node or get_peers towards target: it keeps
// Alpha queries in flight to the closest candidates not yet asked, and
// ends when the K closest candidates that did not fail have all answered.
// onPeer gets each distinct peer from get_peers replies.
//
// There is no round barrier: a new query goes out as soon as any reply
// arrives. Rounds are still counted, as the critical path: the nodes from
// our own table are round 1, a node first named in a round-r reply is
// round r+1 (the shortest such chain if several replies name it), and the
// lookup's Rounds is the highest round among the nodes that answered.
func (n *Node) lookup(ctx context.Context, target [20]byte, getPeers bool, seeds []netip.AddrPort, onPeer func(netip.AddrPort)) lookupResult {
	var res lookupResult
	now := n.now()
	n.mu.Lock()
	known := n.table.closest(target, 2*K, now)
	if len(known) < K {
		seeds = append(seeds, n.extraSeeds...)
	}
	n.mu.Unlock()
	if len(known) < K && seeds == nil {
		// A lookup started before the node joined (a client looks its
		// torrent up at once) starts from the bootstrap nodes rather
		// than finding nothing.
		seeds = n.resolveBootstrap(ctx)
	}

	var cands []*candidate
	seenAddr := make(map[netip.AddrPort]bool)
	seenID := make(map[[20]byte]bool)
	for _, c := range known {
		cands = append(cands, &candidate{c: c, hasID: true, round: 1})
		seenAddr[c.addr], seenID[c.id] = true, true
	}
	for _, a := range seeds {
		if !seenAddr[a] && a.Addr().Is6() == n.v6 && a != n.addr {
			cands = append(cands, &candidate{c: contact{addr: a}, round: 1})
			seenAddr[a] = true
		}
	}
	order := func() {
		slices.SortStableFunc(cands, func(a, b *candidate) int {
			if a.hasID != b.hasID { // unknown ids (bootstrap nodes) first
				if a.hasID {
					return 1
				}
				return -1
			}
			return distanceCmp(target, a.c.id, b.c.id)
		})
	}
	order()
	peersSeen := make(map[netip.AddrPort]bool)

	method := "find_node"
	if getPeers {
		method = "get_peers"
	}
	type result struct {
		cand *candidate
		m    *msg
		err  error
	}
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, Alpha)
	inflight := 0
	var wg sync.WaitGroup
	defer wg.Wait()

	// next returns the closest unasked candidate among the K closest that
	// have not failed, or nil when all of those are answered or asked.
	next := func() *candidate {
		live := 0
		for _, c := range cands {
			if c.state == candFailed {
				continue
			}
			if live++; live > K {
				return nil
			}
			if c.state == candNew {
				return c
			}
		}
		return nil
	}
	converged := func() bool {
		live := 0
		for _, c := range cands {
			if c.state == candFailed {
				continue
			}
			if c.state != candResponded {
				return false
			}
			if live++; live == K {
				return true
			}
		}
		return inflight == 0
	}

	for {
		for inflight < Alpha {
			c := next()
			if c == nil {
				break
			}
			c.state = candInFlight
			inflight++
			res.Queries++
			a := &args{}
			if getPeers {
				a.InfoHash = string(target[:])
			} else {
				a.Target = string(target[:])
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := n.query(qctx, c.c, c.hasID, method, a)
				results <- result{c, m, err}
			}()
		}
		if inflight == 0 {
			break
		}
		var r result
		select {
		case r = <-results:
		case <-ctx.Done():
			res.closest = finalClosest(cands)
			cancel()
			drain(results, inflight)
			return res
		}
		inflight--
		c := r.cand
		if r.err != nil || r.m.R == nil {
			c.state = candFailed
			if converged() {
				break
			}
			continue
		}
		rep := r.m.R
		id := [20]byte([]byte(rep.ID))
		if c.hasID && id != c.c.id {
			// The node answered with another id: it is not the node we were
			// told about, so it does not count towards convergence.
			c.state = candFailed
			continue
		}
		if !c.hasID && seenID[id] {
			c.state = candFailed // a bootstrap address we already know by id
			continue
		}
		c.c.id, c.hasID, c.state, c.token = id, true, candResponded, rep.Token
		seenID[id] = true
		res.Responses++
		res.Rounds = max(res.Rounds, c.round)
		if getPeers && onPeer != nil {
			for _, v := range rep.Values {
				p, err := parseCompactAddr([]byte(v))
				if err != nil || p.Port() == 0 || peersSeen[p] || len(peersSeen) >= maxPeersSeen {
					continue
				}
				peersSeen[p] = true
				res.Peers++
				onPeer(p)
			}
		}
		nodes := rep.Nodes
		if n.v6 {
			nodes = rep.Nodes6
		}
		found, _ := parseCompactNodes(nodes, n.v6) // lengths were validated on receipt
		for _, f := range found {
			if f.id == n.id || seenID[f.id] || seenAddr[f.addr] || f.addr == n.addr {
				if seenID[f.id] {
					// Queries overlap, so a node may first be heard of
					// through a longer chain than this one; its round
					// is that of the shortest chain, as it would be in
					// a lookup that waits for each round to finish.
					for _, o := range cands {
						if o.c.id == f.id && o.round > c.round+1 {
							o.round = c.round + 1
						}
					}
				}
				continue
			}
			seenID[f.id], seenAddr[f.addr] = true, true
			cands = append(cands, &candidate{c: f, hasID: true, round: c.round + 1})
		}
		order()
		if len(cands) > maxCandidates {
			// Forget the farthest candidates nobody has asked yet.
			keep := cands[:0]
			for i, cd := range cands {
				if i < maxCandidates || cd.state != candNew {
					keep = append(keep, cd)
				}
			}
			clear(cands[len(keep):])
			cands = keep
		}
		if converged() {
			break
		}
	}
	cancel()
	drain(results, inflight)
	res.closest = finalClosest(cands)
	n.log.Debug("dht: lookup done", "method", method, "target", hex.EncodeToString(target[:]), "v6", n.v6, "queries", res.Queries, "responses", res.Responses, "rounds", res.Rounds, "peers", res.Peers)
	return res
}

func drain[T any](ch <-chan T, n int) {
	for range n {
		<-ch
	}
}

func finalClosest(cands []*candidate) []*candidate {
	var out []*candidate
	for _, c := range cands {
		if c.state == candResponded && c.hasID {
			out = append(out, c)
			if len(out) == K {
				break
			}
		}
	}
	return out
}

// resolveBootstrap turns the configured HOST:PORT strings into addresses of
// our family; names that do not resolve are logged and skipped.
func (n *Node) resolveBootstrap(ctx context.Context) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range n.cfg.Bootstrap {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			n.log.Warn("dht: bad bootstrap address", "addr", s, "err", err)
			continue
		}
		pn, err := net.LookupPort("udp", port)
		if err != nil {
			n.log.Warn("dht: bad bootstrap port", "addr", s, "err", err)
			continue
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			n.log.Warn("dht: resolving bootstrap node", "addr", s, "err", err)
			continue
		}
		for _, ip := range ips {
			out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(pn)))
		}
	}
	return out
}

// Bootstrap joins the DHT: it looks up our own id starting from the
// configured bootstrap nodes, the nodes of the state file and those given
// to AddNode, which fills the routing table with our neighbourhood, then
// refreshes every bucket farther than that neighbourhood, as Kademlia's
// join does: the own-id lookup meets few nodes far from us, and a table
// with sparse far buckets makes every later lookup (ours and those we
// answer) take more hops. Run calls it at start and whenever the table
// runs low; it fails only if no node answered the own-id lookup.
func (n *Node) Bootstrap(ctx context.Context) error {
	ctx, done, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	n.mu.Lock()
	n.lastBootstrap = n.now()
	n.mu.Unlock()
	res := n.lookup(ctx, n.id, false, n.resolveBootstrap(ctx), nil)
	if res.Responses == 0 {
		return errors.New("dht: bootstrap: no node answered")
	}
	n.mu.Lock()
	far := make([]int, len(n.table.buckets)-1)
	for i := range far {
		far[i] = i
	}
	n.mu.Unlock()
	n.refresh(ctx, far)
	return nil
}

// refresh looks up a random id in each of the given buckets, all at once,
// and marks them refreshed; the nodes that answer fill those buckets and
// their replacement caches.
func (n *Node) refresh(ctx context.Context, buckets []int) {
	var wg sync.WaitGroup
	for _, b := range buckets {
		var rnd [20]byte
		crand.Read(rnd[:])
		n.mu.Lock()
		if b >= len(n.table.buckets) {
			n.mu.Unlock()
			continue
		}
		target := n.table.randomIDInBucket(b, rnd)
		n.table.buckets[b].changed = n.now()
		n.mu.Unlock()
		wg.Go(func() { n.lookup(ctx, target, false, nil, nil) })
	}
	wg.Wait()
}

// GetPeers looks up peers for infoHash, through the partner node too if
// n has one (see Pair). Peers are sent on the returned channel as they are
// found, each once; the channel is closed when the lookups end (they
// converged, ctx was cancelled or the node stopped). The caller must drain
// it or cancel ctx.
func (n *Node) GetPeers(ctx context.Context, infoHash [20]byte) (<-chan netip.AddrPort, error) {
	ctx, done, err := n.begin(ctx)
	if err != nil {
		return nil, err
	}
	p := n.getPartner()
	var pctx context.Context
	var pdone func()
	if p != nil {
		// A partner that is not running (its family has no network)
		// leaves the lookup to n alone.
		if pctx, pdone, err = p.begin(ctx); err != nil {
			p = nil
		}
	}
	ch := make(chan netip.AddrPort, 16)
	onPeer := func(a netip.AddrPort) {
		select {
		case ch <- a:
		case <-ctx.Done():
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { n.lookup(ctx, infoHash, true, nil, onPeer) })
	if p != nil {
		wg.Go(func() { p.lookup(pctx, infoHash, true, nil, onPeer) })
	}
	go func() {
		wg.Wait()
		// Only now: ending n's context ends the partner's too.
		if p != nil {
			pdone()
		}
		done()
		close(ch)
	}()
	return ch, nil
}

// LookupPeers is GetPeers for callers that want the whole answer and the
// cost of the lookup: it blocks until the lookup ends and returns the
// peers found with the lookup's statistics.
func (n *Node) LookupPeers(ctx context.Context, infoHash [20]byte) ([]netip.AddrPort, LookupStats, error) {
	ctx, done, err := n.begin(ctx)
	if err != nil {
		return nil, LookupStats{}, err
	}
	defer done()
	var peers []netip.AddrPort
	res := n.lookup(ctx, infoHash, true, nil, func(p netip.AddrPort) { peers = append(peers, p) })
	return peers, res.LookupStats, nil
}

// Announce tells the DHT that we have infoHash on port: it runs a get_peers
// lookup, then sends announce_peer with their tokens to the K closest
// nodes that answered. With impliedPort the receivers use the source port
// of our UDP packets instead (for peers behind NAT sharing the DHT port).
// A partner node (see Pair) announces in its family at the same time. It
// fails if no node accepted the announce in either family.
func (n *Node) Announce(ctx context.Context, infoHash [20]byte, port uint16, impliedPort bool) error {
	p := n.getPartner()
	if p == nil {
		return n.announce(ctx, infoHash, port, impliedPort)
	}
	var perr error
	var wg sync.WaitGroup
	wg.Go(func() { perr = p.announce(ctx, infoHash, port, impliedPort) })
	err := n.announce(ctx, infoHash, port, impliedPort)
	wg.Wait()
	if err == nil || perr == nil {
		return nil
	}
	return errors.Join(err, perr)
}

// announce is Announce in n's own family.
func (n *Node) announce(ctx context.Context, infoHash [20]byte, port uint16, impliedPort bool) error {
	ctx, done, err := n.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	res := n.lookup(ctx, infoHash, true, nil, nil)
	if len(res.closest) == 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dht: announce: %w", err)
		}
		return errors.New("dht: announce: no node answered the lookup")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	var lastErr error
	for _, c := range res.closest {
		if c.token == "" {
			continue
		}
		a := &args{InfoHash: string(infoHash[:]), Port: int(port), Token: c.token}
		if impliedPort {
			a.ImpliedPort = 1
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := n.query(ctx, c.c, true, "announce_peer", a)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				lastErr = err
				return
			}
			accepted++
		}()
	}
	wg.Wait()
	if accepted == 0 {
		if lastErr == nil {
			lastErr = errors.New("no node returned a token")
		}
		return fmt.Errorf("dht: announce: no node accepted it: %w", lastErr)
	}
	return nil
}
