package netsw

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

var (
	portRxDesc    = prometheus.NewDesc("bulwark_switch_port_rx_frames_total", "Frames received on a switch port.", []string{"port", "network"}, nil)
	portTxDesc    = prometheus.NewDesc("bulwark_switch_port_tx_frames_total", "Frames sent out of a switch port.", []string{"port", "network"}, nil)
	portFullDesc  = prometheus.NewDesc("bulwark_switch_port_tx_full_total", "Frames dropped because the receiver's queue was full.", []string{"port", "network"}, nil)
	portDropDesc  = prometheus.NewDesc("bulwark_switch_port_drops_total", "Frames dropped at a port, by reason.", []string{"port", "network", "reason"}, nil)
	ruleHitDesc   = prometheus.NewDesc("bulwark_firewall_rule_hits_total", "New flows decided by a rule.", []string{"group", "rule"}, nil)
	flowsDesc     = prometheus.NewDesc("bulwark_conntrack_flows", "Tracked flows per network.", []string{"network"}, nil)
	macsDesc      = prometheus.NewDesc("bulwark_switch_mac_entries", "MAC table entries per network.", []string{"network"}, nil)
	macRefuseDesc = prometheus.NewDesc("bulwark_switch_mac_learn_refused_total", "MAC addresses not learned because a table was full.", []string{"network"}, nil)
	policyGenDesc = prometheus.NewDesc("bulwark_firewall_policy_generation", "Generation of the installed firewall policy.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Switch) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{portRxDesc, portTxDesc, portFullDesc, portDropDesc, ruleHitDesc, flowsDesc, macsDesc, macRefuseDesc, policyGenDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector; it reads the atomics directly.
func (s *Switch) Collect(ch chan<- prometheus.Metric) {
	c := prometheus.CounterValue
	for _, p := range *s.ports.Load() {
		nw := p.net.cfg.Name
		ch <- prometheus.MustNewConstMetric(portRxDesc, c, float64(p.stats.rxFrames.Load()), p.Name, nw)
		ch <- prometheus.MustNewConstMetric(portTxDesc, c, float64(p.stats.txFrames.Load()), p.Name, nw)
		ch <- prometheus.MustNewConstMetric(portFullDesc, c, float64(p.stats.txFull.Load()), p.Name, nw)
		for i := 1; i < packet.NumReasons; i++ {
			if n := p.stats.drops[i].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(portDropDesc, c, float64(n), p.Name, nw, packet.Reason(i).String())
			}
		}
	}
	pol := s.policy.Load()
	for _, h := range pol.RuleHits() {
		ch <- prometheus.MustNewConstMetric(ruleHitDesc, c, float64(h.Hits), h.Group, h.RuleID)
	}
	ch <- prometheus.MustNewConstMetric(policyGenDesc, prometheus.GaugeValue, float64(pol.Gen()))
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, n := range s.networks {
		ch <- prometheus.MustNewConstMetric(flowsDesc, prometheus.GaugeValue, float64(n.ct.Len()), name)
		size, refused := n.macs.size()
		ch <- prometheus.MustNewConstMetric(macsDesc, prometheus.GaugeValue, float64(size), name)
		ch <- prometheus.MustNewConstMetric(macRefuseDesc, c, float64(refused), name)
	}
}

var _ = strconv.Itoa
