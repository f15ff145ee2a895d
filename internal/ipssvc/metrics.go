package ipssvc

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-project/bulwark/internal/ipsstage"
)

// Metrics exports the stage's counters per network for Prometheus.
type Metrics struct{ stage *ipsstage.Stage }

// NewMetrics returns the collector of stage's counters.
func NewMetrics(stage *ipsstage.Stage) *Metrics { return &Metrics{stage: stage} }

var (
	mInspected = prometheus.NewDesc("bulwark_ips_inspected_packets_total", "IP packets the IPS inspected.", []string{"network"}, nil)
	mBytes     = prometheus.NewDesc("bulwark_ips_inspected_bytes_total", "Bytes of the packets the IPS inspected.", []string{"network"}, nil)
	mAlerts    = prometheus.NewDesc("bulwark_ips_alerts_total", "Alerts the IPS raised (every mode).", []string{"network"}, nil)
	mBlocked   = prometheus.NewDesc("bulwark_ips_blocked_packets_total", "Packets the IPS dropped in block mode, by reason.", []string{"network", "reason"}, nil)
	mFlows     = prometheus.NewDesc("bulwark_ips_blocked_flows_total", "Flows a drop or reject rule blocked.", []string{"network"}, nil)
	mOverload  = prometheus.NewDesc("bulwark_ips_overload_packets_total", "Packets not inspected because the engine was overloaded, by what was done with them.", []string{"network", "action"}, nil)
	mUninsp    = prometheus.NewDesc("bulwark_ips_uninspected_packets_total", "Packets passed uninspected because no rules were loaded.", []string{"network"}, nil)
	mRules     = prometheus.NewDesc("bulwark_ips_rules", "Rules in the loaded rule set.", nil, nil)
	mQueue     = prometheus.NewDesc("bulwark_ips_events_dropped_total", "Alert events lost because the delivery queue was full.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mInspected, mBytes, mAlerts, mBlocked, mFlows, mOverload, mUninsp, mRules, mQueue} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	st := m.stage.Stats()
	ch <- prometheus.MustNewConstMetric(mRules, prometheus.GaugeValue, float64(st.Rules))
	ch <- prometheus.MustNewConstMetric(mQueue, prometheus.CounterValue, float64(st.QueueDropped))
	for name, n := range st.Networks {
		c := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, labels...)...)
		}
		c(mInspected, n.InspectedPackets)
		c(mBytes, n.InspectedBytes)
		c(mAlerts, n.Alerts)
		rule := n.BlockedPackets - min(n.BlockedPackets, n.FlowBlockedDrops+n.StreamDrops)
		c(mBlocked, rule, "ips_drop")
		c(mBlocked, n.FlowBlockedDrops, "ips_flow_blocked")
		c(mBlocked, n.StreamDrops, "ips_stream")
		c(mFlows, n.BlockedFlows)
		c(mOverload, n.OverloadPass, "pass")
		c(mOverload, n.OverloadDrop, "drop")
		c(mUninsp, n.Uninspected)
	}
}
