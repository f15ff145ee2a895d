package main

import (
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/pool"
	"github.com/bulwark-project/bulwark/internal/vm"
)

func init() { extraCommands = append(extraCommands, poolCmd) }

// parseMilli reads CPU as millicores: "500m", "2" (CPUs) or "1.5".
func parseMilli(flag, s string) (int64, error) {
	s = strings.TrimSpace(s)
	if v, ok := strings.CutSuffix(s, "m"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("--%s %q: want millicores (500m) or CPUs (1.5)", flag, s)
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > float64(vm.MaxMillicores)/1000 {
		return 0, fmt.Errorf("--%s %q: want millicores (500m) or CPUs (1.5)", flag, s)
	}
	return int64(f*1000 + 0.5), nil
}

// parseMiB reads memory as MiB: "512", "512M", "2G", "2Gi".
func parseMiB(flag, s string) (int64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "i")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1024, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "T"):
		mult, s = 1024*1024, strings.TrimSuffix(s, "T")
	case strings.HasSuffix(s, "M"):
		s = strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > vm.MaxMiB/mult {
		return 0, fmt.Errorf("--%s %q: want MiB (512), or 512M, 2G", flag, s)
	}
	return n * mult, nil
}

// allocFlags are the reservation, limit and shares flags of pools and VMs.
type allocFlags struct {
	cpuRes, cpuLim, cpuShares, memRes, memLim, memShares string
	diskShares                                           string
	diskRBPS, diskWBPS, diskRIOPS, diskWIOPS             int64
}

var allocFlagNames = []string{"cpu-reservation", "cpu-limit", "cpu-shares", "memory-reservation", "memory-limit", "memory-shares",
	"disk-shares", "disk-read-bps", "disk-write-bps", "disk-read-iops", "disk-write-iops"}

func (a *allocFlags) register(f *pflag.FlagSet, disk bool) {
	f.StringVar(&a.cpuRes, "cpu-reservation", "", "guaranteed CPU: millicores (500m) or CPUs (1.5)")
	f.StringVar(&a.cpuLim, "cpu-limit", "", "CPU ceiling: millicores or CPUs (0: none beyond the VM's size or the parent's)")
	f.StringVar(&a.cpuShares, "cpu-shares", "", "CPU priority under contention: low, normal, high or a number")
	f.StringVar(&a.memRes, "memory-reservation", "", "guaranteed memory: MiB, or 512M, 2G")
	f.StringVar(&a.memLim, "memory-limit", "", "memory ceiling: MiB, or 512M, 2G (0: none beyond the VM's size or the parent's)")
	f.StringVar(&a.memShares, "memory-shares", "", "memory priority under contention: low, normal, high or a number")
	if disk {
		f.StringVar(&a.diskShares, "disk-shares", "", "disk I/O priority: low, normal, high or a number")
		f.Int64Var(&a.diskRBPS, "disk-read-bps", 0, "disk read limit, bytes/s (0: none)")
		f.Int64Var(&a.diskWBPS, "disk-write-bps", 0, "disk write limit, bytes/s (0: none)")
		f.Int64Var(&a.diskRIOPS, "disk-read-iops", 0, "disk read limit, operations/s (0: none)")
		f.Int64Var(&a.diskWIOPS, "disk-write-iops", 0, "disk write limit, operations/s (0: none)")
	}
}

// applyPool sets the given flags on a pool definition.
func (a *allocFlags) applyPool(fs *pflag.FlagSet, p *pool.Pool) error {
	return a.apply(fs, &p.CPU.Reservation, &p.CPU.Limit, &p.CPU.Shares, &p.Memory.Reservation, &p.Memory.Limit, &p.Memory.Shares,
		&p.Disk.Shares, &p.Disk.ReadBPS, &p.Disk.WriteBPS, &p.Disk.ReadIOPS, &p.Disk.WriteIOPS)
}

// applyVM sets the given flags on a VM's resources.
func (a *allocFlags) applyVM(fs *pflag.FlagSet, r *vm.Resources) error {
	return a.apply(fs, &r.CPU.ReservationMilli, &r.CPU.LimitMilli, &r.CPU.Shares, &r.Memory.ReservationMiB, &r.Memory.LimitMiB, &r.Memory.Shares,
		&r.Disk.Shares, &r.Disk.ReadBPS, &r.Disk.WriteBPS, &r.Disk.ReadIOPS, &r.Disk.WriteIOPS)
}

func (a *allocFlags) apply(fs *pflag.FlagSet, cpuRes, cpuLim *int64, cpuSh *string, memRes, memLim *int64, memSh *string,
	diskSh *string, rbps, wbps, riops, wiops *int64) error {
	var err error
	set := func(name string, fn func() error) {
		if err == nil && fs.Changed(name) {
			err = fn()
		}
	}
	set("cpu-reservation", func() (e error) { *cpuRes, e = parseMilli("cpu-reservation", a.cpuRes); return })
	set("cpu-limit", func() (e error) { *cpuLim, e = parseMilli("cpu-limit", a.cpuLim); return })
	set("cpu-shares", func() error { *cpuSh = a.cpuShares; return nil })
	set("memory-reservation", func() (e error) { *memRes, e = parseMiB("memory-reservation", a.memRes); return })
	set("memory-limit", func() (e error) { *memLim, e = parseMiB("memory-limit", a.memLim); return })
	set("memory-shares", func() error { *memSh = a.memShares; return nil })
	set("disk-shares", func() error { *diskSh = a.diskShares; return nil })
	set("disk-read-bps", func() error { *rbps = a.diskRBPS; return nil })
	set("disk-write-bps", func() error { *wbps = a.diskWBPS; return nil })
	set("disk-read-iops", func() error { *riops = a.diskRIOPS; return nil })
	set("disk-write-iops", func() error { *wiops = a.diskWIOPS; return nil })
	return err
}

func poolCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pool", Short: "Resource pools: CPU and memory reservations, limits and shares, with admission control (docs/pools.md)"}
	cmd.AddCommand(poolCreateCmd(g), poolListCmd(g), poolShowCmd(g), poolSetCmd(g), poolDeleteCmd(g))
	return cmd
}

func poolCreateCmd(g *globals) *cobra.Command {
	var (
		a          allocFlags
		parent     string
		expandable bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a pool; refused when its reservation does not fit in its parent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := pool.Pool{Name: args[0], Parent: parent, Expandable: expandable}
			if err := a.applyPool(cmd.Flags(), &p); err != nil {
				return err
			}
			var out api.PoolView
			if err := g.client().Do(cmd.Context(), "POST", "/api/v1/pools", p, &out); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printPool(tw, out) })
		},
	}
	cmd.Flags().StringVar(&parent, "parent", "", "parent pool (default: the root, host)")
	cmd.Flags().BoolVar(&expandable, "expandable", false, "let the pool's children borrow beyond its reservation from its parent (off: the pool guarantees exactly its reservation)")
	a.register(cmd.Flags(), true)
	return cmd
}

func poolSetCmd(g *globals) *cobra.Command {
	var (
		a          allocFlags
		parent     string
		expandable bool
	)
	cmd := &cobra.Command{
		Use:   "set NAME",
		Short: "Change a pool's reservations, limits, shares, parent or expandable; checked against the running VMs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			var cur api.PoolView
			if err := c.Do(cmd.Context(), "GET", "/api/v1/pools/"+url.PathEscape(args[0]), nil, &cur); err != nil {
				return err
			}
			p := cur.Pool
			if cmd.Flags().Changed("parent") {
				p.Parent = parent
			}
			if cmd.Flags().Changed("expandable") {
				p.Expandable = expandable
			}
			if err := a.applyPool(cmd.Flags(), &p); err != nil {
				return err
			}
			var out api.PoolView
			if err := c.Do(cmd.Context(), "PUT", "/api/v1/pools/"+url.PathEscape(args[0]), p, &out); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printPool(tw, out) })
		},
	}
	cmd.Flags().StringVar(&parent, "parent", "", "new parent pool (host: the root)")
	cmd.Flags().BoolVar(&expandable, "expandable", false, "let children borrow beyond the reservation")
	a.register(cmd.Flags(), true)
	return cmd
}

func poolListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List pools: reservation, what is held, available, limit, VMs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var list []api.PoolView
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/pools", nil, &list); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), list, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "POOL\tPARENT\tCPU RES\tCPU HELD\tCPU AVAIL\tCPU LIMIT\tMEM RES\tMEM HELD\tMEM AVAIL\tMEM LIMIT\tEXPANDABLE\tVMS")
				for _, p := range list {
					name := firstNonEmpty(p.Pool.Name, pool.RootName)
					parent := p.Pool.Parent
					switch {
					case name == pool.RootName:
						parent = "-"
					case parent == "":
						parent = pool.RootName
					}
					fmt.Fprintf(tw, "%s\t%s\t%dm\t%dm\t%dm\t%s\t%d\t%d\t%d\t%s\t%t\t%d\n", name, parent,
						p.CPU.Reservation, p.CPU.ReservedByPools+p.CPU.ReservedByVMs, p.CPU.Available, limitStr(p.CPU.Limit, "m"),
						p.Memory.Reservation, p.Memory.ReservedByPools+p.Memory.ReservedByVMs, p.Memory.Available, limitStr(p.Memory.Limit, ""),
						p.Expandable, len(p.VMs))
				}
			})
		},
	}
}

func limitStr(v int64, unit string) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10) + unit
}

func poolShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a pool: accounts, who holds its reservations, its VMs and their use (host: the root)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p api.PoolView
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/pools/"+url.PathEscape(args[0]), nil, &p); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), p, func(tw *tabwriter.Writer) { printPool(tw, p) })
		},
	}
}

func printPool(w io.Writer, p api.PoolView) {
	name := firstNonEmpty(p.Pool.Name, pool.RootName)
	fmt.Fprintf(w, "Pool:\t%s\n", name)
	if name != pool.RootName {
		fmt.Fprintf(w, "Parent:\t%s\n", firstNonEmpty(p.Pool.Parent, pool.RootName))
	}
	fmt.Fprintf(w, "Expandable:\t%t\n", p.Expandable)
	fmt.Fprintf(w, "Cgroup:\tBASE/vm/%s\n", p.Path)
	acct := func(label, unit string, a pool.Account, hs []pool.Holder, shares string) {
		fmt.Fprintf(w, "%s:\treservation %d%s, limit %s, shares %s\n", label, a.Reservation, unit, limitStr(a.Limit, unit), firstNonEmpty(shares, "normal"))
		fmt.Fprintf(w, "\theld %d%s (pools %d%s, VMs %d%s), borrowed %d%s, unreserved %d%s, available to a new VM %d%s\n",
			a.ReservedByPools+a.ReservedByVMs, unit, a.ReservedByPools, unit, a.ReservedByVMs, unit, a.Borrowed, unit, a.Unreserved, unit, a.Available, unit)
		for _, h := range hs {
			fmt.Fprintf(w, "\t  %s %s holds %d%s\n", h.Kind, h.Name, h.Amount, unit)
		}
	}
	acct("CPU", "m", p.CPU, p.CPUHolders, p.Pool.CPU.Shares)
	acct("Memory", " MiB", p.Memory, p.MemoryHolders, p.Pool.Memory.Shares)
	if len(p.Children) > 0 {
		fmt.Fprintf(w, "Pools:\t%s\n", strings.Join(p.Children, ", "))
	}
	fmt.Fprintln(w, "VM\tCPU NOW\tCPU 1M\tTHROTTLED\tMEMORY\tDISK R/W B/S\tNET RX/TX BIT/S")
	names := append([]string(nil), p.VMs...)
	sort.Strings(names)
	for _, n := range names {
		u, ok := p.VMUsage[n]
		if !ok {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t-\n", n)
			continue
		}
		fmt.Fprintf(w, "%s\t%dm\t%dm\t%.0f%%\t%d MiB\t%d/%d\t%d/%d\n", n, u.CPUMilli, u.CPUMilliAvg, u.Throttled*100, u.MemoryMiB,
			u.DiskReadBps, u.DiskWriteBps, u.NetRxBps, u.NetTxBps)
	}
}

func poolDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a pool that holds no VMs and no pools",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.client().Do(cmd.Context(), "DELETE", "/api/v1/pools/"+url.PathEscape(args[0]), nil, nil)
		},
	}
}
