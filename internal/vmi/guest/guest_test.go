package guest

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

// A synthetic kernel: physical memory is a byte slice, the direct map
// starts at pageOffset and the "kernel image" symbols live in the direct
// map too (Read handles both the same way), so hostile layouts are easy to
// build.
const pageOffset = 0xffff888000000000

var testOffsets = map[string]uint64{
	"task_struct.tasks": 0x10, "task_struct.pid": 0x20, "task_struct.tgid": 0x24, "task_struct.__state": 0x28,
	"task_struct.comm": 0x30, "task_struct.mm": 0x40, "task_struct.real_parent": 0x48, "task_struct.cred": 0x50,
	"task_struct.start_time": 0x58, "task_struct.pid_links": 0x60, "cred.uid": 4, "cred.gid": 8,
	"pid_namespace.idr": 0x8, "idr.idr_rt": 0, "xarray.xa_head": 8, "xa_node.shift": 0, "xa_node.slots": 0x28,
	"pid.tasks": 0x10,
}

func testKernel(phys []byte, syms map[string]uint64) *Kernel {
	return &Kernel{Mem: mem.FromBytes(phys), PageOffset: pageOffset,
		L: &Layout{Symbols: syms, Offsets: testOffsets, ImageSyscalls: make([]uint64, 4)}}
}

func put64(b []byte, off, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

// task writes a task_struct at physical address pa.
func task(b []byte, pa uint64, pid int32, comm string, next, prev uint64) {
	put64(b, pa+0x10, next)
	put64(b, pa+0x18, prev)
	binary.LittleEndian.PutUint32(b[pa+0x20:], uint32(pid))
	binary.LittleEndian.PutUint32(b[pa+0x24:], uint32(pid))
	copy(b[pa+0x30:pa+0x40], comm)
}

func TestTaskListAndCycle(t *testing.T) {
	b := make([]byte, 1<<16)
	va := func(pa uint64) uint64 { return pageOffset + pa }
	// init_task at 0x1000, A at 0x2000, B at 0x3000: a proper ring.
	task(b, 0x1000, 0, "swapper/0", va(0x2010), va(0x3010))
	task(b, 0x2000, 1, "init", va(0x3010), va(0x1010))
	task(b, 0x3000, 7, "evil\x1b]52;", va(0x1010), va(0x2010))
	k := testKernel(b, map[string]uint64{"init_task": va(0x1000)})
	ps, err := k.TaskList()
	if err != nil || len(ps) != 3 || ps[1].Comm != "init" || ps[2].PID != 7 {
		t.Fatalf("%+v %v", ps, err)
	}
	if strings.ContainsAny(ps[2].Comm, "\x1b") {
		t.Fatalf("control bytes in comm: %q", ps[2].Comm)
	}
	// B points back to A instead of init_task: a cycle that never returns.
	put64(b, 0x3010, va(0x2010))
	if _, err := k.TaskList(); err == nil || !strings.Contains(err.Error(), "loops") {
		t.Fatalf("cycle: %v", err)
	}
	// A pointer outside RAM.
	put64(b, 0x2010, 0xffff888fffff0000)
	if _, err := k.TaskList(); err == nil {
		t.Fatal("wild pointer accepted")
	}
}

// FuzzViews walks every view over random memory: errors are fine, panics
// and hangs are not.
func FuzzViews(f *testing.F) {
	seed := make([]byte, 1<<14)
	task(seed, 0x1000, 0, "swapper/0", pageOffset+0x1010, pageOffset+0x1010)
	f.Add(seed, uint64(0x1000), uint64(0x2000))
	f.Fuzz(func(t *testing.T, b []byte, initPA, nsPA uint64) {
		if len(b) < 4096 || len(b) > 1<<20 {
			return
		}
		k := testKernel(b, map[string]uint64{"init_task": pageOffset + initPA%uint64(len(b)),
			"init_pid_ns": pageOffset + nsPA%uint64(len(b)), "sys_call_table": pageOffset,
			"_stext": pageOffset, "_etext": pageOffset + 4096})
		k.TaskList()
		k.PIDTable()
		k.inPIDTable(pageOffset+initPA%uint64(len(b)), int32(nsPA))
		k.inTaskList(pageOffset + initPA%uint64(len(b)))
		k.Syscalls()
		k.IDT(pageOffset, 0xfff)
	})
}
