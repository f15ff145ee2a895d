package manager

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-project/bulwark/internal/vm"
)

type metrics struct {
	starts  prometheus.Counter
	crashes prometheus.Counter
}

func newMetrics() metrics {
	return metrics{
		starts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_vm_starts_total", Help: "VM start requests that launched a hypervisor process."}),
		crashes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_vm_crashes_total", Help: "Hypervisor processes that failed or exited unexpectedly."}),
	}
}

var vmsDesc = prometheus.NewDesc("bulwark_vms", "VMs by lifecycle state.", []string{"state"}, nil)

// Describe implements prometheus.Collector.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	m.metrics.starts.Describe(ch)
	m.metrics.crashes.Describe(ch)
	ch <- vmsDesc
}

// Collect implements prometheus.Collector. VM counts are read from the store
// at scrape time so they can never drift from the truth.
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	m.metrics.starts.Collect(ch)
	m.metrics.crashes.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	vms, err := m.store.ListVMs(ctx)
	if err != nil {
		return
	}
	counts := map[vm.State]int{}
	for _, v := range vms {
		counts[v.State]++
	}
	for _, s := range []vm.State{vm.Defined, vm.Starting, vm.Running, vm.Paused, vm.Stopping, vm.Stopped, vm.Crashed} {
		ch <- prometheus.MustNewConstMetric(vmsDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
