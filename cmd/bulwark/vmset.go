package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// vmUpdate is the daemon's answer to a change (api.VMUpdate).
type vmUpdate struct {
	VM      *vm.VM      `json:"vm"`
	Changes []vm.Change `json:"changes"`
}

// setFlags are the flags of `vm set`; only those given go into the patch.
type setFlags struct {
	vcpus, memory                                   int
	cmdline, image, kernel, initrd, accel, interval string
	disks, nics, nicGroups                          []string
	noDisks, noNICs                                 bool
	// Resource pools (issue 14): live on a running VM.
	pool     string
	alloc    allocFlags
	noRes    bool
	nicRates []string
}

func vmSetCmd(g *globals) *cobra.Command {
	var (
		sf   setFlags
		file string
	)
	cmd := &cobra.Command{
		Use:   "set NAME",
		Short: "Change a VM's definition and print what changed (stopped VMs; NIC groups also while running)",
		Long: `Change a VM's definition. Only the fields given change; --disk and --nic
replace the whole list. A running VM takes only --nic-groups (applied by the
switch at once); stop it for anything else. -f takes the patch as JSON
(see PATCH /api/v1/vms/{name} in the API description), '-' for stdin.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in any
			if file != "" {
				if countSet(cmd.Flags(), changeFlags...) > 0 {
					return fmt.Errorf("-f takes the whole change: give no other change flags")
				}
				raw, err := readPatchFile(file)
				if err != nil {
					return err
				}
				// Sent as written, so the daemon judges duplicate keys and
				// unknown fields itself.
				in = raw
			} else {
				p, err := sf.patch(cmd.Flags())
				if err != nil && !(isNothingToChange(err) && countSet(cmd.Flags(), allocFlagNames...) > 0) {
					return err
				}
				if countSet(cmd.Flags(), allocFlagNames...) > 0 {
					if sf.noRes {
						return fmt.Errorf("--no-resources and resource flags contradict each other")
					}
					// Resources are replaced whole: start from the VM's.
					var cur vm.VM
					if err := g.client().Do(cmd.Context(), "GET", "/api/v1/vms/"+url.PathEscape(args[0]), nil, &cur); err != nil {
						return err
					}
					var r vm.Resources
					if cur.Spec.Resources != nil {
						r = *cur.Spec.Resources
					}
					if err := sf.alloc.applyVM(cmd.Flags(), &r); err != nil {
						return err
					}
					p.Resources = &r
				}
				in = p
			}
			var out vmUpdate
			if err := g.client().Do(cmd.Context(), "PATCH", "/api/v1/vms/"+url.PathEscape(args[0]), in, &out); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printChanges(tw, args[0], out) })
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the change as a JSON patch file ('-' for stdin)")
	sf.register(f)
	return cmd
}

// register adds the change flags to f.
func (sf *setFlags) register(f *pflag.FlagSet) {
	f.IntVar(&sf.vcpus, "vcpus", 0, "virtual CPUs")
	f.IntVar(&sf.memory, "memory", 0, "memory in MiB")
	f.StringVar(&sf.cmdline, "cmdline", "", "kernel command line ('' clears it)")
	f.StringVar(&sf.image, "image", "", "registry image: take its kernel, initrd and command line (disks stay; '' detaches the VM from its image)")
	f.StringVar(&sf.kernel, "kernel", "", "kernel image (absolute path)")
	f.StringVar(&sf.initrd, "initrd", "", "initramfs (absolute path; '' removes it)")
	f.StringVar(&sf.accel, "accel", "", "accelerator: auto, kvm or tcg")
	f.StringVar(&sf.interval, "monitor-interval", "", "introspection scan interval ('' for on demand only)")
	f.StringArrayVar(&sf.disks, "disk", nil, "disk PATH[:ro] (repeatable; replaces every disk)")
	f.BoolVar(&sf.noDisks, "no-disks", false, "remove every disk")
	f.StringArrayVar(&sf.nics, "nic", nil, "NIC as mac=M,network=N,ip=A,group=G (repeatable; replaces every NIC: keep mac= to keep a NIC)")
	f.BoolVar(&sf.noNICs, "no-nics", false, "remove every NIC")
	f.StringArrayVar(&sf.nicGroups, "nic-groups", nil, "IDX=g1,g2: security groups of NIC IDX, in order ('IDX=' for none; repeatable; live on a running VM)")
	f.StringVar(&sf.pool, "pool", "", "move the VM to this resource pool (host: the root; live on a running VM when its reservation fits)")
	f.BoolVar(&sf.noRes, "no-resources", false, "clear the VM's reservations, limits and shares")
	f.StringArrayVar(&sf.nicRates, "nic-rate", nil, "IDX=egress=BPS,egress-pps=N,ingress=BPS,ingress-pps=N: rate limits of NIC IDX in bits/s and packets/s ('IDX=' for none; live)")
	sf.alloc.register(f, true)
}

// changeFlags are the flags that make up a change (all but -f).
var changeFlags = append([]string{"vcpus", "memory", "cmdline", "image", "kernel", "initrd", "accel", "monitor-interval",
	"disk", "no-disks", "nic", "no-nics", "nic-groups", "pool", "no-resources", "nic-rate"}, allocFlagNames...)

// countSet counts the given flags that were set.
func countSet(fs *pflag.FlagSet, names ...string) int {
	n := 0
	for _, name := range names {
		if f := fs.Lookup(name); f != nil && f.Changed {
			n++
		}
	}
	return n
}

// patch builds the change from the flags that were given.
func (sf *setFlags) patch(fs *pflag.FlagSet) (vm.Patch, error) {
	var p vm.Patch
	changed := func(name string) bool { return fs.Changed(name) }
	if changed("vcpus") {
		p.VCPUs = &sf.vcpus
	}
	if changed("memory") {
		p.MemoryMiB = &sf.memory
	}
	for _, s := range []struct {
		flag string
		dst  **string
		v    *string
	}{
		{"cmdline", &p.Cmdline, &sf.cmdline}, {"image", &p.Image, &sf.image}, {"kernel", &p.Kernel, &sf.kernel}, {"initrd", &p.Initrd, &sf.initrd},
		{"accel", &p.Accel, &sf.accel}, {"monitor-interval", &p.MonitorInterval, &sf.interval},
	} {
		if changed(s.flag) {
			*s.dst = s.v
		}
	}
	switch {
	case sf.noDisks && len(sf.disks) > 0:
		return p, fmt.Errorf("--no-disks and --disk contradict each other")
	case sf.noDisks:
		p.Disks = &[]vm.Disk{}
	case len(sf.disks) > 0:
		ds := []vm.Disk{}
		for _, d := range sf.disks {
			disk, err := parseDisk(d)
			if err != nil {
				return p, err
			}
			ds = append(ds, disk)
		}
		p.Disks = &ds
	}
	switch {
	case sf.noNICs && len(sf.nics) > 0:
		return p, fmt.Errorf("--no-nics and --nic contradict each other")
	case sf.noNICs:
		p.NICs = &[]vm.NIC{}
	case len(sf.nics) > 0:
		ns := []vm.NIC{}
		for _, s := range sf.nics {
			n, err := parseNIC(s)
			if err != nil {
				return p, err
			}
			ns = append(ns, n)
		}
		p.NICs = &ns
	}
	for _, s := range sf.nicGroups {
		idx, list, ok := strings.Cut(s, "=")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 {
			return p, fmt.Errorf("--nic-groups %q: want IDX=g1,g2 (IDX the NIC's index, from 0)", s)
		}
		groups := []string{}
		if list != "" {
			groups = strings.Split(list, ",")
		}
		p.NICGroups = append(p.NICGroups, vm.NICGroups{NIC: n, Groups: groups})
	}
	if changed("pool") {
		p.Pool = &sf.pool
	}
	if sf.noRes {
		p.Resources = &vm.Resources{}
	}
	for _, s := range sf.nicRates {
		nr, err := parseNICRate(s)
		if err != nil {
			return p, err
		}
		p.NICRates = append(p.NICRates, nr)
	}
	if isEmptyPatch(p) {
		return p, errNothingToChange
	}
	return p, nil
}

var errNothingToChange = fmt.Errorf("nothing to change: give at least one of --vcpus, --memory, --cmdline, --kernel, --initrd, --accel, --monitor-interval, --disk, --nic, --nic-groups, --pool, --cpu-reservation (and the other resource flags), --nic-rate, or -f")

func isNothingToChange(err error) bool { return err == errNothingToChange }

// parseNICRate reads IDX=egress=BPS,egress-pps=N,ingress=BPS,ingress-pps=N.
func parseNICRate(s string) (vm.NICRateSet, error) {
	idx, list, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(idx)
	if !ok || err != nil || n < 0 {
		return vm.NICRateSet{}, fmt.Errorf("--nic-rate %q: want IDX=egress=BPS,... (IDX the NIC's index, from 0)", s)
	}
	if list == "" {
		return vm.NICRateSet{NIC: n}, nil
	}
	var r vm.NICRate
	for _, kv := range strings.Split(list, ",") {
		k, v, ok := strings.Cut(kv, "=")
		x, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || x < 0 {
			return vm.NICRateSet{}, fmt.Errorf("--nic-rate %q: %q is not key=number", s, kv)
		}
		switch k {
		case "egress":
			r.EgressBPS = x
		case "egress-pps":
			r.EgressPPS = x
		case "ingress":
			r.IngressBPS = x
		case "ingress-pps":
			r.IngressPPS = x
		default:
			return vm.NICRateSet{}, fmt.Errorf("--nic-rate %q: unknown key %q (egress, egress-pps, ingress, ingress-pps)", s, k)
		}
	}
	return vm.NICRateSet{NIC: n, Rate: &r}, nil
}

// isEmptyPatch: every field absent (they are all omitempty).
func isEmptyPatch(p vm.Patch) bool {
	b, _ := json.Marshal(p)
	return string(b) == "{}"
}

func readPatchFile(path string) (json.RawMessage, error) {
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
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s: not valid JSON", path)
	}
	return json.RawMessage(b), nil
}

// printChanges prints one line per changed field, or that nothing changed.
func printChanges(tw *tabwriter.Writer, name string, u vmUpdate) {
	if len(u.Changes) == 0 {
		fmt.Fprintf(tw, "VM %s: no change\n", name)
		return
	}
	state := ""
	if u.VM != nil {
		state = string(u.VM.State)
	}
	fmt.Fprintf(tw, "VM %s (%s): %d change(s)\n", name, state, len(u.Changes))
	fmt.Fprintln(tw, "FIELD\tOLD\t\tNEW")
	for _, c := range u.Changes {
		fmt.Fprintf(tw, "%s\t%s\t→\t%s\n", c.Field, orNoneCLI(c.Old), orNoneCLI(c.New))
	}
}

func orNoneCLI(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
