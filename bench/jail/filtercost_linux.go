package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/jail/seccomp"
)

// filterCostEnv makes the benchmark's own binary a child that times a few
// syscalls, with the vmm filter loaded when its value is "vmm". A filter
// cannot be removed, hence separate processes: one with the filter, one
// without, taking turns so that host noise falls on both alike.
const filterCostEnv = "BULWARK_BENCH_JAIL_FILTER_COST"

// filterCost is what one syscall costs without and with Bulwark's vmm
// filter, in ns, the fastest of the batches. QEMU's own -sandbox filter is
// loaded in both kinds of VMM, so the difference is what the jail adds to
// every syscall QEMU makes.
type filterCost struct {
	Syscall  string  `json:"syscall"`
	BeforeNS float64 `json:"before_ns"`
	AfterNS  float64 `json:"after_ns"`
}

// Syscalls a TCG QEMU makes most during a boot (futex, ppoll, sendmsg on
// the console socket, by strace -c), stood in for by calls that return at
// once: the filter's cost does not depend on what the call then does.
var filterProbes = []struct {
	name string
	call func(devnull int) error
}{
	{"getpid", func(int) error { unix.Getpid(); return nil }},
	{"ppoll (no fds, zero timeout)", func(int) error {
		_, err := unix.Ppoll(nil, &unix.Timespec{}, nil)
		if err == unix.EINTR { // the Go scheduler's preemption signal
			err = nil
		}
		return err
	}},
	{"write (1 byte to /dev/null)", func(fd int) error {
		_, err := unix.Write(fd, []byte{0})
		return err
	}},
}

// filterCostChild is the child's side. It loads the filter if asked, then
// for every byte read from stdin times filterCostCalls calls of each probe
// and answers with one JSON line of ns per call, in filterProbes order.
func filterCostChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "filter cost:", err)
		return 1
	}
	fd, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	if os.Getenv(filterCostEnv) == seccomp.VMM {
		if err := seccomp.Install(seccomp.VMM); err != nil {
			return fail(err)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	var b [1]byte
	for {
		if _, err := os.Stdin.Read(b[:]); err != nil {
			return 0 // the parent is done
		}
		ns := make([]float64, len(filterProbes))
		for i, p := range filterProbes {
			t := time.Now()
			for range filterCostCalls {
				if err := p.call(fd); err != nil {
					return fail(fmt.Errorf("%s: %w", p.name, err))
				}
			}
			ns[i] = float64(time.Since(t).Nanoseconds()) / filterCostCalls
		}
		if err := enc.Encode(ns); err != nil {
			return fail(err)
		}
	}
}

// costChild is one running child.
type costChild struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

func startCostChild(ctx context.Context, exe, filter string) (*costChild, error) {
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(slices.Clone(os.Environ()), filterCostEnv+"="+filter)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &costChild{cmd: cmd, in: in, out: json.NewDecoder(out)}, nil
}

// batch has the child time one batch of every probe.
func (c *costChild) batch() ([]float64, error) {
	if _, err := c.in.Write([]byte{0}); err != nil {
		return nil, err
	}
	var ns []float64
	if err := c.out.Decode(&ns); err != nil {
		return nil, err
	}
	if len(ns) != len(filterProbes) {
		return nil, fmt.Errorf("%d results for %d probes", len(ns), len(filterProbes))
	}
	return ns, nil
}

func (c *costChild) close() error {
	c.in.Close()
	return c.cmd.Wait()
}

// measureFilterCost runs one child without and one with the vmm filter,
// filterCostReps batches each in turns, and keeps each probe's fastest
// batch per child.
func measureFilterCost() (res []filterCost, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var children [2]*costChild
	defer func() {
		for _, c := range children {
			if c != nil {
				if cerr := c.close(); cerr != nil && err == nil {
					err = fmt.Errorf("filter cost child: %w", cerr)
				}
			}
		}
	}()
	best := [2][]float64{}
	for i, filter := range []string{"none", seccomp.VMM} {
		if children[i], err = startCostChild(ctx, exe, filter); err != nil {
			return nil, err
		}
		best[i] = slices.Repeat([]float64{math.Inf(1)}, len(filterProbes))
	}
	for r := range filterCostReps {
		for k := range 2 {
			i := (r + k) % 2 // alternate which goes first
			ns, err := children[i].batch()
			if err != nil {
				return nil, fmt.Errorf("filter cost child (%s filter): %w", []string{"no", "vmm"}[i], err)
			}
			for p := range ns {
				best[i][p] = min(best[i][p], ns[p])
			}
		}
	}
	for p, pr := range filterProbes {
		res = append(res, filterCost{Syscall: pr.name, BeforeNS: best[0][p], AfterNS: best[1][p]})
	}
	return res, nil
}
