package trackerserver

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the tracker's Prometheus series, in a registry of its own so
// that several servers (as in tests) do not collide.
type metrics struct {
	reg                       *prometheus.Registry
	announceHTTP, announceUDP prometheus.Counter
	scrapeHTTP, scrapeUDP     prometheus.Counter
	connectUDP                prometheus.Counter
	errors                    *prometheus.CounterVec
	// Calls to a shared store, by operation (announce, scrape, passkey,
	// whitelist, traffic): failures and latency.
	storeErrors  *prometheus.CounterVec
	storeSeconds *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	announces := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sower_tracker_announces_total", Help: "Announces answered, by protocol.",
	}, []string{"protocol"})
	scrapes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sower_tracker_scrapes_total", Help: "Scrapes answered, by protocol.",
	}, []string{"protocol"})
	m.connectUDP = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sower_tracker_udp_connects_total", Help: "UDP connect requests answered.",
	})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sower_tracker_errors_total",
		Help: "Requests refused or dropped, by kind (bad_request, access, capacity, udp_connection_id, udp_dropped, database, store, internal).",
	}, []string{"kind"})
	m.announceHTTP = announces.WithLabelValues("http")
	m.announceUDP = announces.WithLabelValues("udp")
	m.scrapeHTTP = scrapes.WithLabelValues("http")
	m.scrapeUDP = scrapes.WithLabelValues("udp")
	for _, k := range []string{"bad_request", "access", "capacity", "udp_connection_id", "udp_dropped", "database", "store", "internal"} {
		m.errors.WithLabelValues(k)
	}
	m.reg.MustRegister(announces, scrapes, m.connectUDP, m.errors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sower_tracker_http_connections", Help: "HTTP connections open.",
		}, func() float64 { return float64(s.conns.count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sower_tracker_http_connections_max", Help: "Cap on open HTTP connections (max_conns).",
		}, func() float64 { return float64(s.conns.max) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sower_tracker_http_connections_evicted_total", Help: "Idle HTTP connections closed to admit a new one at the cap.",
		}, func() float64 { return float64(s.conns.evicted.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sower_tracker_http_connections_refused_total", Help: "HTTP connections refused at the cap with none idle.",
		}, func() float64 { return float64(s.conns.refused.Load()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sower_tracker_store_errors_total",
		Help: "Calls to the shared store that failed or timed out, by operation.",
	}, []string{"op"})
	m.storeSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sower_tracker_store_seconds",
		Help:    "Latency of calls to the shared store, by operation.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"op"})
	if s.shared == nil {
		// Swarms in this process: on a shared store they are the
		// store's, and Redis reports them (INFO keyspace, memory).
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sower_tracker_peers", Help: "Peers tracked (a dual-stack peer counts once per address family).",
			}, func() float64 { return float64(s.table.peers()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sower_tracker_torrents", Help: "Torrents held in memory.",
			}, func() float64 { return float64(s.table.torrents()) }),
		)
	} else {
		for _, op := range []string{"announce", "scrape", "passkey", "whitelist", "traffic"} {
			m.storeErrors.WithLabelValues(op)
		}
		m.reg.MustRegister(m.storeErrors, m.storeSeconds)
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
