package daemon

import (
	"time"

	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics exposes the daemon on /metrics from a registry of its own (no
// global state), computed from the torrents at scrape time so nothing is
// counted twice or goes stale.
type metrics struct {
	reg *prometheus.Registry
	d   *Daemon

	torrents, rate, bytes, peers, limit *prometheus.Desc
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg:      prometheus.NewRegistry(),
		d:        d,
		torrents: prometheus.NewDesc("sower_torrents", "Torrents by state.", []string{"state"}, nil),
		rate:     prometheus.NewDesc("sower_rate_bytes_per_second", "Current transfer rate of all torrents.", []string{"direction"}, nil),
		bytes:    prometheus.NewDesc("sower_transferred_bytes", "Payload bytes transferred by the torrents present, all runs.", []string{"direction"}, nil),
		peers:    prometheus.NewDesc("sower_peers", "Connected peers of all torrents.", nil, nil),
		limit:    prometheus.NewDesc("sower_rate_limit_bytes_per_second", "Global rate limit in force (0 = none).", []string{"direction"}, nil),
	}
	m.reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.torrents
	ch <- m.rate
	ch <- m.bytes
	ch <- m.peers
	ch <- m.limit
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	byState := map[string]int{}
	var down, up, downBytes, upBytes float64
	peers := 0
	for _, s := range m.d.List() {
		byState[s.State]++
		down += s.DownloadRate
		up += s.UploadRate
		downBytes += float64(s.Downloaded)
		upBytes += float64(s.Uploaded)
		peers += s.Peers
	}
	for _, name := range stateNames {
		ch <- prometheus.MustNewConstMetric(m.torrents, prometheus.GaugeValue, float64(byState[name]), name)
	}
	ch <- prometheus.MustNewConstMetric(m.rate, prometheus.GaugeValue, down, "down")
	ch <- prometheus.MustNewConstMetric(m.rate, prometheus.GaugeValue, up, "up")
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.GaugeValue, downBytes, "down")
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.GaugeValue, upBytes, "up")
	ch <- prometheus.MustNewConstMetric(m.peers, prometheus.GaugeValue, float64(peers))
	m.d.mu.Lock()
	ld, lu := m.d.effectiveLimits(time.Now())
	m.d.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.limit, prometheus.GaugeValue, float64(ld), "down")
	ch <- prometheus.MustNewConstMetric(m.limit, prometheus.GaugeValue, float64(lu), "up")
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
