package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bulwark-project/bulwark/internal/console"
	"github.com/bulwark-project/bulwark/internal/vm"
)

func vmCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "Manage virtual machines"}
	cmd.AddCommand(vmCreateCmd(g), vmListCmd(g), vmShowCmd(g), vmDeleteCmd(g), vmStartCmd(g), vmStopCmd(g), vmLogCmd(g), vmSetCmd(g), vmSnapshotCmd(g))
	for _, a := range []struct{ name, short string }{
		{"pause", "Freeze a VM's vCPUs"},
		{"resume", "Continue a paused VM"},
	} {
		cmd.AddCommand(vmActionCmd(g, a.name, a.short))
	}
	return cmd
}

func printVMs(g *globals, w io.Writer, v any, vms []*vm.VM) error {
	return g.emit(w, v, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "NAME\tSTATE\tVCPUS\tMEMORY\tACCEL\tPID\tREASON")
		for _, x := range vms {
			pid := "-"
			if x.Runtime.PID > 0 {
				pid = fmt.Sprint(x.Runtime.PID)
			}
			accel := x.Runtime.Accel
			if accel == "" {
				accel = x.Spec.Accel
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%dMiB\t%s\t%s\t%s\n", x.Spec.Name, x.State, x.Spec.VCPUs, x.Spec.MemoryMiB, accel, pid, x.Reason)
		}
	})
}

func vmCreateCmd(g *globals) *cobra.Command {
	var (
		spec     vm.Spec
		file     string
		disks    []string
		nics     []string
		rootSize string
		alloc    allocFlags
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Define a VM (flags, or a JSON spec with --file)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				s, err := readSpecFile(file)
				if err != nil {
					return err
				}
				if len(args) == 1 {
					s.Name = args[0]
				}
				spec = s
			} else {
				if len(args) != 1 {
					return fmt.Errorf("NAME is required")
				}
				spec.Name = args[0]
				for _, d := range disks {
					if sz, ok := strings.CutPrefix(d, "size="); ok {
						if spec.Image == "" {
							return fmt.Errorf("--disk %s: a root disk size goes with --image", d)
						}
						rootSize = sz
						continue
					}
					disk, err := parseDisk(d)
					if err != nil {
						return err
					}
					spec.Disks = append(spec.Disks, disk)
				}
				for _, n := range nics {
					nic, err := parseNIC(n)
					if err != nil {
						return err
					}
					spec.NICs = append(spec.NICs, nic)
				}
				if countSet(cmd.Flags(), allocFlagNames...) > 0 {
					r := vm.Resources{}
					if spec.Resources != nil {
						r = *spec.Resources
					}
					if err := alloc.applyVM(cmd.Flags(), &r); err != nil {
						return err
					}
					spec.Resources = &r
				}
			}
			v, err := g.client().CreateVMWithRoot(cmd.Context(), spec, rootSize)
			if err != nil {
				return err
			}
			return printVMs(g, cmd.OutOrStdout(), v, []*vm.VM{v})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "JSON spec file ('-' for stdin); unknown fields are refused")
	f.IntVar(&spec.VCPUs, "vcpus", 1, "virtual CPUs")
	f.IntVar(&spec.MemoryMiB, "memory", 256, "memory in MiB")
	f.StringVar(&spec.Kernel, "kernel", "", "kernel image (absolute path)")
	f.StringVar(&spec.Initrd, "initrd", "", "initramfs (absolute path)")
	f.StringVar(&spec.Cmdline, "cmdline", "", "kernel command line (console=ttyS0 is added)")
	f.StringVar(&spec.Accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	f.StringVar(&spec.Image, "image", "", "registry image (bulwark image list): kernel, initrd, command line and, for a disk image, a thin root volume NAME-root")
	f.StringArrayVar(&disks, "disk", nil, "disk: PATH[:ro] (host path), volume=POOL/NAME[:ro], or size=8G (the root volume of --image; repeatable)")
	f.StringArrayVar(&nics, "nic", nil, "NIC as mac=M,network=N,ip=A,group=G[,group=G2] (all optional; repeatable)")
	f.StringVar(&spec.MonitorInterval, "monitor-interval", "", "scan the guest from outside this often (introspection; Go duration, e.g. 30s; empty: on demand only)")
	f.StringVar(&spec.Pool, "pool", "", "resource pool (default: the root, host; needs Pool.Allocate there)")
	alloc.register(f, true)
	return cmd
}

func readSpecFile(path string) (vm.Spec, error) {
	var (
		b   []byte
		err error
	)
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return vm.Spec{}, err
	}
	var s vm.Spec
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func parseDisk(s string) (vm.Disk, error) {
	var d vm.Disk
	rest, ro := strings.CutSuffix(s, ":ro")
	d.ReadOnly = ro
	if ref, ok := strings.CutPrefix(rest, "volume="); ok {
		d.Volume = ref
		if ref == "" {
			return d, fmt.Errorf("--disk %q: empty volume (want volume=POOL/NAME)", s)
		}
		return d, nil
	}
	d.Path = rest
	if d.Path == "" {
		return d, fmt.Errorf("--disk %q: empty path", s)
	}
	return d, nil
}

func parseNIC(s string) (vm.NIC, error) {
	var n vm.NIC
	if s == "" || s == "-" {
		return n, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return n, fmt.Errorf("--nic %q: %q is not key=value", s, kv)
		}
		switch k {
		case "mac":
			n.MAC = v
		case "network":
			n.Network = v
		case "socket":
			n.Socket = v
		case "ip":
			n.IP = v
		case "group":
			n.Groups = append(n.Groups, v)
		default:
			return n, fmt.Errorf("--nic %q: unknown key %q (mac, network, ip, group, socket)", s, k)
		}
	}
	return n, nil
}

func vmListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List VMs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			vms, err := g.client().ListVMs(cmd.Context())
			if err != nil {
				return err
			}
			if vms == nil {
				vms = []*vm.VM{}
			}
			return printVMs(g, cmd.OutOrStdout(), vms, vms)
		},
	}
}

func vmShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a VM", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := g.client().GetVM(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) { showVM(tw, v) })
		},
	}
}

func showVM(tw *tabwriter.Writer, v *vm.VM) {
	p := func(k string, val any) { fmt.Fprintf(tw, "%s:\t%v\n", k, val) }
	p("name", v.Spec.Name)
	p("state", v.State)
	if v.Reason != "" {
		p("reason", v.Reason)
	}
	p("vcpus", v.Spec.VCPUs)
	p("memory", fmt.Sprintf("%d MiB", v.Spec.MemoryMiB))
	p("kernel", v.Spec.Kernel)
	if v.Spec.Initrd != "" {
		p("initrd", v.Spec.Initrd)
	}
	p("cmdline", v.Spec.Cmdline)
	for i, d := range v.Spec.Disks {
		p(fmt.Sprintf("disk%d", i), fmt.Sprintf("%s read_only=%v", d.Path, d.ReadOnly))
	}
	for i, n := range v.Spec.NICs {
		line := fmt.Sprintf("mac=%s network=%s ip=%s groups=%s", n.MAC, n.Network, n.IP, strings.Join(n.Groups, ","))
		if r := n.Rate; r != nil {
			line += fmt.Sprintf(" rate: egress %d bit/s %d pps, ingress %d bit/s %d pps", r.EgressBPS, r.EgressPPS, r.IngressBPS, r.IngressPPS)
		}
		p(fmt.Sprintf("nic%d", i), line)
	}
	p("pool", firstNonEmpty(v.Spec.Pool, "host"))
	if r := v.Spec.Resources; r != nil {
		p("cpu", fmt.Sprintf("reservation %dm, limit %s, shares %s", r.CPU.ReservationMilli, limitStr(r.CPU.LimitMilli, "m"), firstNonEmpty(r.CPU.Shares, "normal")))
		p("memory resources", fmt.Sprintf("reservation %d MiB, limit %s, shares %s", r.Memory.ReservationMiB, limitStr(r.Memory.LimitMiB, " MiB"), firstNonEmpty(r.Memory.Shares, "normal")))
		if r.Disk != (vm.DiskResources{}) {
			p("disk", fmt.Sprintf("shares %s, read %d B/s %d IOPS, write %d B/s %d IOPS", firstNonEmpty(r.Disk.Shares, "normal"), r.Disk.ReadBPS, r.Disk.ReadIOPS, r.Disk.WriteBPS, r.Disk.WriteIOPS))
		}
	}
	p("monitor interval", firstNonEmpty(v.Spec.MonitorInterval, "none (introspection on demand only)"))
	p("accel", fmt.Sprintf("%s (requested %s) %s", v.Runtime.Accel, v.Spec.Accel, v.Runtime.AccelWhy))
	if v.Runtime.PID > 0 {
		p("pid", v.Runtime.PID)
		p("uid", v.Runtime.UID)
		p("run_dir", v.Runtime.RunDir)
	}
	p("created", v.Created)
	p("updated", v.Updated)
}

func vmActionCmd(g *globals, action, short string) *cobra.Command {
	return &cobra.Command{
		Use: action + " NAME", Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := g.client().Action(cmd.Context(), args[0], action)
			if err != nil {
				return err
			}
			return printVMs(g, cmd.OutOrStdout(), v, []*vm.VM{v})
		},
	}
}

// startPoll is how often `vm start` asks for the VM's state while it waits.
const startPoll = 200 * time.Millisecond

func vmStartCmd(g *globals) *cobra.Command {
	var (
		wait   time.Duration
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "start NAME",
		Short: "Start a VM and wait until it runs; exit non-zero with the reason if it crashes or stops instead",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			v, err := c.Action(cmd.Context(), args[0], "start")
			if err != nil {
				return err
			}
			if noWait {
				// Judge the answer alone: one that already says crashed
				// is a failure; one still starting is not known to be.
				if settled, serr := startOutcome(v); settled {
					err = serr
				}
			} else {
				get := func(ctx context.Context) (*vm.VM, error) { return c.GetVM(ctx, args[0]) }
				v, err = waitStarted(cmd.Context(), get, v, wait, startPoll)
			}
			if perr := printVMs(g, cmd.OutOrStdout(), v, []*vm.VM{v}); err == nil {
				err = perr
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the VM to run (or crash) before giving up")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not poll: judge only the daemon's answer to the start (a VM still starting exits 0)")
	return cmd
}

// waitStarted polls get, starting from v (the start call's answer), until
// startOutcome settles or wait passes. It returns the last record seen and
// startOutcome's error, or an error saying what it was still waiting for.
func waitStarted(ctx context.Context, get func(context.Context) (*vm.VM, error), v *vm.VM, wait, poll time.Duration) (*vm.VM, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		if settled, err := startOutcome(v); settled {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("vm %q: still %s after %v (see `bulwark vm show %s`)", v.Spec.Name, v.State, wait, v.Spec.Name)
		case <-time.After(poll):
		}
		next, err := get(ctx)
		if err != nil {
			if ctx.Err() != nil {
				continue // the deadline, reported above with the last state
			}
			return v, fmt.Errorf("vm %q: start requested, but its state cannot be read: %w", v.Spec.Name, err)
		}
		v = next
	}
}

// startOutcome judges a VM's record after a start: settled once the VM
// runs (or is paused: someone else's resume/pause raced us, but it came
// up) or has ended; the error, for an ended VM, carries the reason the
// daemon recorded. Starting is the only state worth waiting on.
func startOutcome(v *vm.VM) (settled bool, err error) {
	reason := v.Reason
	if reason == "" {
		reason = "no reason recorded"
	}
	switch v.State {
	case vm.Running, vm.Paused:
		return true, nil
	case vm.Starting:
		return false, nil
	case vm.Crashed:
		return true, fmt.Errorf("vm %q crashed while starting: %s", v.Spec.Name, reason)
	case vm.Stopped, vm.Stopping:
		return true, fmt.Errorf("vm %q %s instead of running: %s", v.Spec.Name, v.State, reason)
	}
	return true, fmt.Errorf("vm %q is %s after the start: %s", v.Spec.Name, v.State, reason)
}

func vmStopCmd(g *globals) *cobra.Command {
	var (
		force   bool
		timeout int
	)
	cmd := &cobra.Command{
		Use: "stop NAME", Short: "Power a VM off (ACPI), killing it after --timeout or at once with --force", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := g.client().StopVM(cmd.Context(), args[0], force, timeout)
			if err != nil {
				return err
			}
			return printVMs(g, cmd.OutOrStdout(), v, []*vm.VM{v})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "kill the hypervisor without asking the guest")
	cmd.Flags().IntVar(&timeout, "timeout", 0, "seconds to wait for the guest (default: daemon's --stop-timeout)")
	return cmd
}

func vmDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a VM that is not running", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().DeleteVM(cmd.Context(), args[0]); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), map[string]string{"deleted": args[0]}, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "deleted %s\n", args[0])
			})
		},
	}
}

func vmLogCmd(g *globals) *cobra.Command {
	var (
		n       int
		boot    string
		current bool
	)
	cmd := &cobra.Command{
		Use: "log NAME", Short: "Print the tail of a VM's serial console log", Args: cobra.ExactArgs(1),
		Long: `Print the tail of a VM's serial console log (kept across starts and
rotated by the daemon).

--boot current (or --current-boot) prints only the current boot: the log from
the last Linux boot banner ("Linux version ...", the kernel's first console
line) on, looking back up to 4 MiB. The banner is guest output, so a guest can
print a fake one to hide its own earlier output of this run from this view
(the full log is still there without the flag). When no banner is found the
whole tail is printed with a note on stderr.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch boot {
			case "", "all":
			case "current":
				current = true
			default:
				return fmt.Errorf("--boot %q: want current or all", boot)
			}
			if current && n == 0 {
				n = maxConsoleLogBytes
			}
			b, err := g.client().ConsoleLog(cmd.Context(), args[0], n)
			if err != nil {
				return err
			}
			if current {
				var found bool
				if b, found = currentBoot(b); !found {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: no boot banner in the last %d bytes of the log: printing all of them\n", len(b))
				}
			}
			if g.output == "json" {
				return g.emit(cmd.OutOrStdout(), map[string]string{"vm": args[0], "log": strings.ToValidUTF8(string(b), "\uFFFD")}, nil)
			}
			// Guest bytes on the operator's terminal: neutralise what
			// attacks the terminal (OSC 52 clipboard writes and the like).
			if f, ok := cmd.OutOrStdout().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				var san console.Sanitizer
				b = san.Write(nil, b)
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().IntVar(&n, "bytes", 0, "bytes from the end (default 65536; with --boot current 4 MiB)")
	cmd.Flags().StringVar(&boot, "boot", "", "which boot: current (since the last kernel boot banner) or all")
	cmd.Flags().BoolVar(&current, "current-boot", false, "same as --boot current")
	return cmd
}

// maxConsoleLogBytes is the most the daemon returns of a log (its
// maxLogBytes).
const maxConsoleLogBytes = 4 << 20

// bootBanner matches the Linux kernel's first console line, with or
// without the printk timestamp.
var bootBanner = regexp.MustCompile(`(?m)^(?:\[ *0\.0+\] )?Linux version `)

// currentBoot cuts a console log to the last boot: from the start of the
// last banner line on.
func currentBoot(b []byte) ([]byte, bool) {
	all := bootBanner.FindAllIndex(b, -1)
	if len(all) == 0 {
		return b, false
	}
	return b[all[len(all)-1][0]:], true
}
