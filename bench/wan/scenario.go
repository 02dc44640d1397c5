package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Scenarios the command knows.
var scenarioNames = []string{"pair", "home", "foreign-seed", "nat"}

// natKind is the NAT a host sits behind (mirrors wanlab.NAT, so plans
// build and print on any OS).
type natKind int

const (
	noNAT natKind = iota
	fullCone
	symmetric
)

func (n natKind) String() string {
	return [...]string{"-", "full-cone", "symmetric"}[n]
}

// access is one host's access link: rates in bits per second, the round
// trip it adds to a path, and its loss. A path between two hosts has the
// mean of their RTTs and losses: each host contributes a quarter of its
// RTT and half its loss in each direction.
type access struct {
	up, down int64
	rtt      time.Duration
	loss     float64
}

// hostPlan is one host of a scenario.
type hostPlan struct {
	name   string
	seed   bool
	link   access
	nat    natKind
	joinAt time.Duration // after the release
	leaves bool          // leaves at 50 % and comes back after away
	away   time.Duration
}

// plan is one scenario, drawn from a seed: its hosts and file.
type plan struct {
	scenario string
	size     int64
	piece    int64
	hosts    []hostPlan // the seed first
}

// leechers returns the hosts that download.
func (p *plan) leechers() []hostPlan { return p.hosts[1:] }

// mbit is bits per second.
const mbit = 1_000_000

// buildPlan draws scenario name's hosts from seed, with the file size
// scaled by scale (times scale with it).
func buildPlan(name string, seed uint64, scale float64) (*plan, error) {
	if !slices.Contains(scenarioNames, name) {
		return nil, fmt.Errorf("unknown scenario %q (want one of %v)", name, scenarioNames)
	}
	if scale <= 0 || scale > 16 {
		return nil, fmt.Errorf("scale %v: want a number in (0, 16]", scale)
	}
	size := func(mib int64) int64 {
		s := int64(float64(mib<<20) * scale)
		return max(s, 1<<20)
	}
	if name == "pair" {
		l := access{up: 100 * mbit, down: 100 * mbit, rtt: 80 * time.Millisecond, loss: 0.001}
		return &plan{scenario: name, size: size(256), piece: 256 << 10, hosts: []hostPlan{
			{name: "seed", seed: true, link: l},
			{name: "leech1", link: l},
		}}, nil
	}
	// home, and the swarms built on it.
	r := rand.New(rand.NewPCG(seed, 0x77616e))
	p := &plan{scenario: name, size: size(128), piece: 256 << 10}
	p.hosts = append(p.hosts, hostPlan{name: "seed", seed: true,
		link: access{up: 20 * mbit, down: 100 * mbit, rtt: 40 * time.Millisecond, loss: 0.001}})
	const n = 24
	uniform := func(lo, hi float64) float64 { return lo + r.Float64()*(hi-lo) }
	for i := range n {
		p.hosts = append(p.hosts, hostPlan{name: fmt.Sprintf("leech%d", i+1), link: access{
			up:   int64(uniform(2, 10) * mbit),
			down: int64(uniform(20, 100) * mbit),
			rtt:  time.Duration(uniform(20, 200)) * time.Millisecond,
			loss: uniform(0, 0.01),
		}})
	}
	// The seed alone at its rate: the yardstick for join and away times.
	base := time.Duration(float64(p.size) * 8 / float64(p.hosts[0].link.up) * float64(time.Second))
	order := r.Perm(n)
	// A third join late, a sixth (of the others) leave at 50 % and come
	// back.
	for _, i := range order[:n/3] {
		p.hosts[1+i].joinAt = time.Duration(uniform(0.1, 0.5) * float64(base))
	}
	for _, i := range order[n/3 : n/3+n/6] {
		p.hosts[1+i].leaves = true
		p.hosts[1+i].away = time.Duration(uniform(0.1, 0.3) * float64(base))
	}
	if name == "nat" {
		// Half the leechers behind NAT, the two kinds alternating.
		for k, i := range r.Perm(n)[:n/2] {
			p.hosts[1+i].nat = fullCone
			if k%2 == 1 {
				p.hosts[1+i].nat = symmetric
			}
		}
	}
	return p, nil
}

// ideal is a lower bound on the time until the last leecher completes,
// from the fluid model of a swarm: every byte leaves the seed once
// (size / seed upload), every leecher receives the file (its join and
// away time plus size / its download), and the N copies need the
// swarm's whole upload (N × size / (seed + all leechers' upload)). It
// ignores that late and away leechers upload less, so it is optimistic.
func (p *plan) ideal() time.Duration {
	f := float64(p.size) * 8 // bits
	seed := p.hosts[0].link.up
	t := f / float64(seed)
	total := float64(seed)
	for _, h := range p.leechers() {
		d := (h.joinAt + h.away).Seconds() + f/float64(h.link.down)
		t = max(t, d)
		total += float64(h.link.up)
	}
	t = max(t, f*float64(len(p.leechers()))/total)
	return time.Duration(t * float64(time.Second))
}

// timeout bounds a run: generous against the ideal (one TCP connection
// over the pair's 80 ms and 0.1 % loss runs at a few Mbit/s, 15x the
// ideal), at least two minutes.
func (p *plan) timeout() time.Duration {
	return max(2*time.Minute, 20*p.ideal())
}
