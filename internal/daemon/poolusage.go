package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/pool"
	"github.com/bulwark-project/bulwark/internal/poolsvc"
)

// Usage sampling of the resource pools: every usageInterval the cgroup
// counters of each running VM and its switch ports' byte counters are
// read; rates come from consecutive samples, the 1-minute average from
// the oldest kept.
const (
	usageInterval = 5 * time.Second
	usageKeep     = 13 // one minute of intervals, plus the newest
)

type usageSample struct {
	at           time.Time
	cpuUsec      uint64
	periods      uint64
	throttled    uint64
	mem          int64
	rd, wr       uint64
	netRx, netTx uint64
}

// usageSampler keeps recent samples per VM.
type usageSampler struct {
	cg  *manager.CgroupSet
	sw  *netsw.Switch
	mgr *manager.Manager
	svc *poolsvc.Service

	mu      sync.Mutex
	samples map[string][]usageSample
}

func (u *usageSampler) run(ctx context.Context) {
	t := time.NewTicker(usageInterval)
	defer t.Stop()
	for {
		u.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (u *usageSampler) sample(ctx context.Context) {
	vms, err := u.mgr.List(ctx)
	if err != nil {
		return
	}
	net := map[string][2]uint64{}
	if u.sw != nil {
		for _, p := range u.sw.Ports() {
			if p.VM != "" {
				n := net[p.VM]
				// From the VM's side: rx is what the switch delivered
				// to it (the port's tx), tx what it sent (the port's rx).
				n[0] += p.TxBytes
				n[1] += p.RxBytes
				net[p.VM] = n
			}
		}
	}
	now := time.Now()
	live := map[string]bool{}
	for _, v := range vms {
		if !v.State.Active() || u.cg == nil {
			continue
		}
		st, ok := u.cg.VMStats(v.Spec.Name)
		if !ok {
			continue
		}
		live[v.Spec.Name] = true
		s := usageSample{at: now, cpuUsec: st.CPU.UsageUsec, periods: st.CPU.NrPeriods, throttled: st.CPU.NrThrottled,
			mem: st.MemoryCurrent, rd: st.IO.ReadBytes, wr: st.IO.WriteBytes, netRx: net[v.Spec.Name][0], netTx: net[v.Spec.Name][1]}
		u.mu.Lock()
		list := append(u.samples[v.Spec.Name], s)
		if len(list) > usageKeep {
			list = list[len(list)-usageKeep:]
		}
		if u.samples == nil {
			u.samples = map[string][]usageSample{}
		}
		u.samples[v.Spec.Name] = list
		u.mu.Unlock()
	}
	u.mu.Lock()
	for n := range u.samples {
		if !live[n] {
			delete(u.samples, n)
		}
	}
	u.mu.Unlock()
}

func rate(a, b uint64, d time.Duration) int64 {
	if b < a || d <= 0 {
		return 0 // a counter reset (the VM restarted)
	}
	return int64(float64(b-a) / d.Seconds())
}

// Usage is api.Pools.Usage.
func (u *usageSampler) Usage(_ context.Context, vms []string) map[string]api.VMUsage {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]api.VMUsage{}
	for _, n := range vms {
		list := u.samples[n]
		if len(list) == 0 {
			continue
		}
		last := list[len(list)-1]
		vu := api.VMUsage{MemoryMiB: last.mem >> 20}
		if len(list) >= 2 {
			prev := list[len(list)-2]
			d := last.at.Sub(prev.at)
			vu.CPUMilli = rate(prev.cpuUsec, last.cpuUsec, d) / 1000
			if p := last.periods - prev.periods; last.periods >= prev.periods && p > 0 && last.throttled >= prev.throttled {
				vu.Throttled = float64(last.throttled-prev.throttled) / float64(p)
			}
			vu.DiskReadBps = rate(prev.rd, last.rd, d)
			vu.DiskWriteBps = rate(prev.wr, last.wr, d)
			vu.NetRxBps = rate(prev.netRx, last.netRx, d) * 8
			vu.NetTxBps = rate(prev.netTx, last.netTx, d) * 8
			first := list[0]
			vu.CPUMilliAvg = rate(first.cpuUsec, last.cpuUsec, last.at.Sub(first.at)) / 1000
		}
		out[n] = vu
	}
	return out
}

// Prometheus metrics of the pools: reservations and limits, and each VM's
// measured use.
var (
	poolResDesc   = prometheus.NewDesc("bulwark_pool_reservation", "A resource pool's reservation (cpu in millicores, memory in MiB).", []string{"pool", "resource"}, nil)
	poolLimitDesc = prometheus.NewDesc("bulwark_pool_limit", "A resource pool's limit (0: none).", []string{"pool", "resource"}, nil)
	poolHeldDesc  = prometheus.NewDesc("bulwark_pool_reserved", "What a pool's children (pools and running VMs) hold of its reservation.", []string{"pool", "resource"}, nil)
	vmCPUDesc     = prometheus.NewDesc("bulwark_vm_cpu_millicores", "A VM's CPU use over the last sampling interval.", []string{"vm", "pool"}, nil)
	vmThrDesc     = prometheus.NewDesc("bulwark_vm_cpu_throttled_ratio", "Share of CPU periods in which the VM's cap held it back.", []string{"vm", "pool"}, nil)
	vmMemDesc     = prometheus.NewDesc("bulwark_vm_memory_bytes", "A VM's memory in use (its cgroup).", []string{"vm", "pool"}, nil)
	vmDiskDesc    = prometheus.NewDesc("bulwark_vm_disk_bytes_per_second", "A VM's disk throughput over the last sampling interval.", []string{"vm", "pool", "direction"}, nil)
	vmNetDesc     = prometheus.NewDesc("bulwark_vm_network_bits_per_second", "A VM's network throughput over the last sampling interval, from the VM's side (rx: delivered to it, tx: sent by it).", []string{"vm", "pool", "direction"}, nil)
)

func (u *usageSampler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolResDesc, poolLimitDesc, poolHeldDesc, vmCPUDesc, vmThrDesc, vmMemDesc, vmDiskDesc, vmNetDesc} {
		ch <- d
	}
}

func (u *usageSampler) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := u.svc.List(ctx)
	if err != nil {
		return
	}
	for _, st := range list {
		name := st.Pool.Name
		if name == "" {
			name = pool.RootName
		}
		for _, r := range []struct {
			res string
			a   pool.Account
		}{{"cpu", st.CPU}, {"memory", st.Memory}} {
			ch <- prometheus.MustNewConstMetric(poolResDesc, prometheus.GaugeValue, float64(r.a.Reservation), name, r.res)
			ch <- prometheus.MustNewConstMetric(poolLimitDesc, prometheus.GaugeValue, float64(r.a.Limit), name, r.res)
			ch <- prometheus.MustNewConstMetric(poolHeldDesc, prometheus.GaugeValue, float64(r.a.ReservedByPools+r.a.ReservedByVMs), name, r.res)
		}
		for n, vu := range u.Usage(ctx, st.VMs) {
			ch <- prometheus.MustNewConstMetric(vmCPUDesc, prometheus.GaugeValue, float64(vu.CPUMilli), n, name)
			ch <- prometheus.MustNewConstMetric(vmThrDesc, prometheus.GaugeValue, vu.Throttled, n, name)
			ch <- prometheus.MustNewConstMetric(vmMemDesc, prometheus.GaugeValue, float64(vu.MemoryMiB<<20), n, name)
			ch <- prometheus.MustNewConstMetric(vmDiskDesc, prometheus.GaugeValue, float64(vu.DiskReadBps), n, name, "read")
			ch <- prometheus.MustNewConstMetric(vmDiskDesc, prometheus.GaugeValue, float64(vu.DiskWriteBps), n, name, "write")
			ch <- prometheus.MustNewConstMetric(vmNetDesc, prometheus.GaugeValue, float64(vu.NetRxBps), n, name, "rx")
			ch <- prometheus.MustNewConstMetric(vmNetDesc, prometheus.GaugeValue, float64(vu.NetTxBps), n, name, "tx")
		}
	}
}
