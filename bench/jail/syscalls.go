package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/bulwark-project/bulwark/internal/jail/seccomp"
)

// observedDir holds, relative to the module root, the syscall sets traced
// from the real processes, one name a line.
const observedDir = "internal/jail/seccomp/testdata"

// observedFiles names the traced set of each filter's process.
var observedFiles = map[string]string{
	seccomp.VMM:     "qemu-observed.txt",
	seccomp.Monitor: "monitor-observed.txt",
}

// How the filter cost is measured: the fastest of filterCostReps runs of
// filterCostCalls calls.
const (
	filterCostCalls = 20_000
	filterCostReps  = 15
)

// firecrackerSource says where firecrackerThreads comes from.
const firecrackerSource = "resources/seccomp/x86_64-unknown-linux-musl.json " +
	"(firecracker-microvm/firecracker main at 81b38b9, August 2026, after v1.16)"

// firecrackerThreads are the sizes of Firecracker's per-thread x86_64
// filters: distinct syscalls, and rules counting each argument variant
// separately (futex, mmap and ioctl appear several times). Counted from the
// file named in firecrackerSource; Firecracker's filters do not change often,
// but recount them when quoting these elsewhere.
var firecrackerThreads = []firecrackerThread{
	{Thread: "vmm", Syscalls: 50, Rules: 76},
	{Thread: "api", Syscalls: 31, Rules: 36},
	{Thread: "vcpu", Syscalls: 27, Rules: 49},
}

type firecrackerThread struct {
	Thread   string `json:"thread"`
	Syscalls int    `json:"syscalls"`
	Rules    int    `json:"rules"`
}

// allowList is the size of one of Bulwark's filters beside the set traced
// from its process, or why either could not be read (the filters are data
// that may be mid-edit).
type allowList struct {
	Filter   string   `json:"filter"`
	Process  string   `json:"process"`
	Allowed  int      `json:"allowed"`
	Syscalls []string `json:"syscalls,omitempty"`
	Err      string   `json:"error,omitempty"`

	ObservedFile string `json:"observed_file"`
	Observed     int    `json:"observed"`
	ObservedErr  string `json:"observed_error,omitempty"`
	// ObservedNotAllowed are traced but not allowed. The seccomp package's
	// tests require a rule for every traced syscall, so these are the ones
	// answered with an errno (clone3, io_uring_setup: ENOSYS).
	ObservedNotAllowed []string `json:"observed_not_allowed,omitempty"`
	// AllowedNotObserved is what the list adds to the traced set: the jail
	// stage's Go runtime window before execve, KVM-only calls.
	AllowedNotObserved []string `json:"allowed_not_observed,omitempty"`
}

type syscallCounts struct {
	Lists             []allowList         `json:"bulwark"`
	Firecracker       []firecrackerThread `json:"firecracker"`
	FirecrackerSource string              `json:"firecracker_source"`
	// FilterCost is what the vmm filter adds to a syscall.
	FilterCost    []filterCost `json:"filter_cost,omitempty"`
	FilterCostErr string       `json:"filter_cost_error,omitempty"`
}

func countSyscalls(modDir string) syscallCounts {
	sc := syscallCounts{Firecracker: firecrackerThreads, FirecrackerSource: firecrackerSource}
	for _, f := range []string{seccomp.VMM, seccomp.VMMKVM, seccomp.Monitor} {
		base, _, _ := strings.Cut(f, "+")
		l := allowList{Filter: f, Process: "QEMU", ObservedFile: observedDir + "/" + observedFiles[base]}
		if f == seccomp.Monitor {
			l.Process = "bulwark monitor"
		}
		names, err := seccomp.Syscalls(f)
		l.Allowed, l.Syscalls = len(names), names
		if err != nil {
			l.Err = err.Error()
		}
		if modDir == "" {
			l.ObservedErr = "not inside the bulwark module"
		} else if observed, err := readObserved(filepath.Join(modDir, l.ObservedFile)); err != nil {
			l.ObservedErr = err.Error()
		} else {
			l.Observed = len(observed)
			if l.Err == "" {
				for _, n := range observed {
					if !slices.Contains(names, n) {
						l.ObservedNotAllowed = append(l.ObservedNotAllowed, n)
					}
				}
				for _, n := range names {
					if !slices.Contains(observed, n) {
						l.AllowedNotObserved = append(l.AllowedNotObserved, n)
					}
				}
			}
		}
		sc.Lists = append(sc.Lists, l)
	}
	return sc
}

// syscallName is the first word of an observed-set line; anything after
// it (counts, which thread, notes) is ignored.
var syscallName = regexp.MustCompile(`^[a-z_][a-z0-9_]*`)

// readObserved returns the distinct syscall names in the traced set, one
// per line, with # comments and blank lines skipped.
func readObserved(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l, _, _ := strings.Cut(sc.Text(), "#")
		if n := syscallName.FindString(strings.TrimSpace(l)); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no syscall names", path)
	}
	slices.Sort(out)
	return out, nil
}

// syscallsMarkdown renders the counts as a section of the report.
func syscallsMarkdown(sc syscallCounts) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("\n### Syscalls allowed\n\n| filter | syscalls allowed | traced from the process |\n|---|---:|---:|\n")
	for _, l := range sc.Lists {
		allowed := fmt.Sprint(l.Allowed)
		if l.Err != "" {
			allowed = "unavailable: " + l.Err
		}
		observed := fmt.Sprintf("%d (`%s`)", l.Observed, l.ObservedFile)
		if l.ObservedErr != "" {
			observed = "unavailable: " + l.ObservedErr
		}
		p("| Bulwark `%s` (%s, every thread) | %s | %s |\n", l.Filter, l.Process, allowed, observed)
	}
	for _, t := range sc.Firecracker {
		p("| Firecracker `%s` thread | %d (%d rules) | |\n", t.Thread, t.Syscalls, t.Rules)
	}
	p("\nFirecracker: %s; a rule is one syscall with one set of argument conditions.\n", sc.FirecrackerSource)
	for _, l := range sc.Lists {
		if l.Err != "" || l.ObservedErr != "" {
			continue
		}
		p("`%s`: allowed but not traced %d (%s); traced but not allowed %d (%s: answered with an errno, since the seccomp tests require a rule for every traced syscall).\n",
			l.Filter, len(l.AllowedNotObserved), listOrNone(l.AllowedNotObserved), len(l.ObservedNotAllowed), listOrNone(l.ObservedNotAllowed))
	}
	if sc.FilterCostErr != "" {
		p("\nCost of the `vmm` filter per syscall: unavailable: %s\n", sc.FilterCostErr)
	} else if len(sc.FilterCost) > 0 {
		p("\nCost of the `vmm` filter per syscall (two child processes, one with the filter loaded, taking turns; fastest of %d batches of %d calls each):\n\n", filterCostReps, filterCostCalls)
		p("| syscall | without (ns) | with `vmm` (ns) | added (ns) |\n|---|---:|---:|---:|\n")
		for _, c := range sc.FilterCost {
			p("| %s | %.0f | %.0f | %+.0f |\n", c.Syscall, c.BeforeNS, c.AfterNS, c.AfterNS-c.BeforeNS)
		}
	}
	return b.String()
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
