package dht

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
)

// BenchmarkGetPeers measures get_peers lookups in simulated networks of
// real nodes over the in-memory transport. Per lookup it reports the
// median and 95th percentile of queries sent and rounds (the longest
// referral chain, see lookup), the share of lookups that missed the
// announced peer, the memory the network holds per node (heap and
// goroutine stacks after a GC, divided by the node count) and the queries
// each node sent to join and settle. Build time is not timed.
//
//	go test -run '^$' -bench BenchmarkGetPeers -benchtime 200x ./dht
func BenchmarkGetPeers(b *testing.B) {
	for _, size := range []int{500, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			before := memInUse()
			s := newSim(b, size, simOptions{queryTimeout: 2 * time.Second, settle: true})
			perNode := (memInUse() - before) / uint64(size)
			var joinQueries uint64
			for _, n := range s.nodes {
				joinQueries += n.Stats().QueriesSent
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			type swarm struct {
				ih   [20]byte
				peer netip.AddrPort
			}
			var swarms []swarm
			for i := range 20 {
				a := s.nodes[s.rnd.IntN(size)]
				ih := randomID(s.rnd)
				if err := a.Announce(ctx, ih, uint16(20000+i), false); err != nil {
					b.Fatal(err)
				}
				swarms = append(swarms, swarm{ih, netip.AddrPortFrom(a.Addr().Addr(), uint16(20000+i))})
			}
			var queries, rounds []int
			misses := 0
			for b.Loop() {
				sw := swarms[s.rnd.IntN(len(swarms))]
				from := s.nodes[s.rnd.IntN(size)]
				peers, st, err := from.LookupPeers(ctx, sw.ih)
				if err != nil {
					b.Fatal(err)
				}
				if !slices.Contains(peers, sw.peer) {
					misses++
				}
				queries = append(queries, st.Queries)
				rounds = append(rounds, st.Rounds)
			}
			b.ReportMetric(float64(percentile(queries, 50)), "queries-p50")
			b.ReportMetric(float64(percentile(queries, 95)), "queries-p95")
			b.ReportMetric(float64(percentile(rounds, 50)), "rounds-p50")
			b.ReportMetric(float64(percentile(rounds, 95)), "rounds-p95")
			b.ReportMetric(100*float64(misses)/float64(len(queries)), "miss-%")
			b.ReportMetric(float64(perNode), "bytes/node")
			b.ReportMetric(float64(joinQueries)/float64(size), "join-queries/node")
		})
	}
}

func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// percentile returns the p-th percentile (nearest rank) of xs.
func percentile(xs []int, p int) int {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
