package mirrorsvc

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports each mirror session's counters for Prometheus: what a
// SIEM needs to see that a session copies, and that it loses nothing.
type Metrics struct{ s *Service }

// NewMetrics returns the collector of the service's sessions.
func NewMetrics(s *Service) *Metrics { return &Metrics{s: s} }

var (
	mFrames  = prometheus.NewDesc("bulwark_mirror_frames_total", "Frames a mirror session copied to its target.", []string{"session", "network", "target"}, nil)
	mBytes   = prometheus.NewDesc("bulwark_mirror_bytes_total", "Bytes a mirror session copied (as stored, cut to the snap length).", []string{"session", "network", "target"}, nil)
	mDropped = prometheus.NewDesc("bulwark_mirror_dropped_total", "Copies a mirror session lost, by cause (queue full, over max_pps, target failed).", []string{"session", "network", "target", "cause"}, nil)
	mMissing = prometheus.NewDesc("bulwark_mirror_missing_ports", "Sources and monitor ports of a mirror session with no switch port now.", []string{"session", "network", "target"}, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mFrames, mBytes, mDropped, mMissing} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, st := range m.s.Status() {
		labels := []string{st.Name, st.Network, string(st.Target.Kind)}
		ch <- prometheus.MustNewConstMetric(mFrames, prometheus.CounterValue, float64(st.Frames), labels...)
		ch <- prometheus.MustNewConstMetric(mBytes, prometheus.CounterValue, float64(st.Bytes), labels...)
		for cause, n := range st.DroppedBy {
			ch <- prometheus.MustNewConstMetric(mDropped, prometheus.CounterValue, float64(n), append(labels, cause)...)
		}
		ch <- prometheus.MustNewConstMetric(mMissing, prometheus.GaugeValue, float64(len(st.Missing)), labels...)
	}
}
