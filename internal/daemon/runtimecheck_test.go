package daemon

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/measure"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
	"github.com/bulwark-project/bulwark/internal/tpm"
	"github.com/bulwark-project/bulwark/internal/tpm/swtpmtest"
	"github.com/bulwark-project/bulwark/internal/vm"
)

func TestJitterBounds(t *testing.T) {
	const mean = time.Minute
	if lo := jitter(mean, func(int64) int64 { return 0 }); lo != mean/2 {
		t.Errorf("lowest draw %v, want %v", lo, mean/2)
	}
	if hi := jitter(mean, func(n int64) int64 { return n - 1 }); hi != 3*mean/2-1 {
		t.Errorf("highest draw %v, want %v", hi, 3*mean/2-1)
	}
	seen := map[time.Duration]bool{}
	for range 10000 {
		d := jitter(mean, rand.Int64N)
		if d < mean/2 || d >= 3*mean/2 {
			t.Fatalf("%v outside [%v, %v)", d, mean/2, 3*mean/2)
		}
		seen[d/(mean/10)] = true
	}
	if len(seen) != 10 {
		t.Errorf("draws cover %d of 10 tenths of the range", len(seen))
	}
}

func TestFirstSightingOnce(t *testing.T) {
	r := &RuntimeChecker{recorded: map[[32]byte]bool{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a, b := [32]byte{1}, [32]byte{2}
	if !r.firstSighting(a) || r.firstSighting(a) || !r.firstSighting(b) {
		t.Fatal("each distinct digest must be new exactly once")
	}
	for i := len(r.recorded); i < maxRecordedFindings; i++ {
		r.firstSighting([32]byte{3, byte(i), byte(i >> 8)})
	}
	if r.firstSighting([32]byte{4}) {
		t.Fatalf("recorded past the %d-finding bound", maxRecordedFindings)
	}
}

type vmList []*vm.VM

func (l vmList) List(context.Context) ([]*vm.VM, error) { return l, nil }

// TestRuntimeCheckerRecordsOnce runs rounds over the test process (the
// "daemon") and a "VM" whose process is /usr/bin/sleep with one byte of
// libc patched: the finding is logged, kept in Latest and extended into a
// real swtpm's PCR 13 once, however many rounds see it.
func TestRuntimeCheckerRecordsOnce(t *testing.T) {
	tp, err := tpm.Open(swtpmtest.Start(t).Config())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	meas, err := measure.Open(filepath.Join(t.TempDir(), "measure"), tp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer meas.Close()

	cmd := exec.Command("/usr/bin/sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	libc, addr := libcFunction(t, pid)
	patchByte(t, pid, addr)

	vms := vmList{{Spec: vm.Spec{Name: "web"}, State: vm.Running, Runtime: vm.Runtime{PID: pid}},
		{Spec: vm.Spec{Name: "off"}, State: vm.Stopped}}
	r, err := newRuntimeChecker("/usr/bin/sleep", time.Minute, vms, meas, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	for range 3 {
		r.CheckNow(context.Background())
	}
	got := r.Latest()
	if len(got) != 2 || got[0].Process != "daemon" || got[1].VM != "web" {
		t.Fatalf("Latest = %+v, want daemon then web", got)
	}
	if d := got[0]; d.Error != "" || len(d.Mismatches) != 0 || d.Bytes == 0 {
		t.Fatalf("the test process is not clean: %+v", d)
	}
	if w := got[1]; len(w.Mismatches) != 1 || w.Mismatches[0].Object != libc {
		t.Fatalf("VM check %+v, want one mismatch in %s", w, libc)
	}
	raw, err := meas.EventLog()
	if err != nil {
		t.Fatal(err)
	}
	events, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.PCR == measure.PCRRuntime {
			n++
			if !strings.HasPrefix(string(e.Data), `runtime-text-mismatch process=qemu vm="web" pid=`) {
				t.Errorf("event data %q", e.Data)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d PCR 13 events after 3 rounds, want 1", n)
	}
	cur, err := tp.ReadPCRs([]int{measure.PCRRuntime})
	if err != nil || cur[measure.PCRRuntime] != eventlog.Replay(events)[measure.PCRRuntime] {
		t.Fatalf("PCR 13 %x does not replay from the log (%v)", cur[measure.PCRRuntime], err)
	}
}

// libcFunction waits for pid's libc and returns its path and the address
// of a byte inside getpwnam's code (sleep never calls it).
func libcFunction(t *testing.T, pid int) (string, uint64) {
	t.Helper()
	for range 200 {
		maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		for _, l := range strings.Split(string(maps), "\n") {
			f := strings.Fields(l)
			if len(f) < 6 || f[1] != "r-xp" || !strings.Contains(f[5], "/libc.so") {
				continue
			}
			var start, end, off uint64
			fmt.Sscanf(f[0], "%x-%x", &start, &end)
			fmt.Sscanf(f[2], "%x", &off)
			ef, err := elf.Open(f[5])
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			syms, _ := ef.DynamicSymbols()
			for _, s := range syms {
				if s.Name != "getpwnam" {
					continue
				}
				for _, p := range ef.Progs {
					if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && s.Value-p.Vaddr < p.Filesz {
						fo := p.Off + s.Value - p.Vaddr + 4
						return f[5], start + fo - off
					}
				}
			}
			t.Fatal("libc has no getpwnam")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("libc never mapped")
	return "", 0
}

func patchByte(t *testing.T, pid int, addr uint64) {
	t.Helper()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(addr)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[0] ^ 0xff}, int64(addr)); err != nil {
		t.Fatal(err)
	}
}
