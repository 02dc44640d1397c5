package session

import (
	"net/netip"
	"sync"
)

// maxVoters bounds the sources whose word on our address is kept.
const maxVoters = 256

// externalVotes collects what trackers (BEP 24 "external ip") and peers
// (BEP 10 "yourip") say our address is: one vote per source, the latest
// word of each, the oldest sources forgotten past maxVoters.
type externalVotes struct {
	mu    sync.Mutex
	votes map[string]netip.Addr
	order []string // sources, oldest first
}

func (v *externalVotes) vote(source string, a netip.Addr) {
	if !a.IsValid() || a.IsUnspecified() {
		return
	}
	a = a.Unmap()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.votes == nil {
		v.votes = make(map[string]netip.Addr)
	}
	if _, ok := v.votes[source]; !ok {
		if len(v.order) == maxVoters {
			delete(v.votes, v.order[0])
			v.order = v.order[1:]
		}
		v.order = append(v.order, source)
	}
	v.votes[source] = a
}

// best returns the address most sources name, IPv4 first (most of the
// swarm is IPv4); invalid if none.
func (v *externalVotes) best() netip.Addr {
	v.mu.Lock()
	defer v.mu.Unlock()
	count := make(map[netip.Addr]int)
	for _, a := range v.votes {
		count[a]++
	}
	var best netip.Addr
	for a, n := range count {
		switch {
		case !best.IsValid(),
			a.Is4() && !best.Is4(),
			a.Is4() == best.Is4() && (n > count[best] || n == count[best] && a.Less(best)):
			best = a
		}
	}
	return best
}

// ExternalIP is our address as most trackers and peers see it (invalid
// until one said), and ExternalPort the port we tell them.
func (s *Session) ExternalIP() netip.Addr { return s.external.best() }

// ExternalPort is the port peers can reach us at, as announced.
func (s *Session) ExternalPort() uint16 { return s.port }
