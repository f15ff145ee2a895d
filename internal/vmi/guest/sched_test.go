package guest

import (
	"encoding/binary"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

// The synthetic kernel of guest_test.go, extended with per-CPU areas, run
// queues, a task_struct slab and its page array. Physical layout:
//
//	0x01000        init_task (swapper/0), listed
//	0x09000        __per_cpu_offset[2], nr_cpu_ids, online mask, cred, sched class
//	0x10000/0x12000 per-CPU areas of CPU 0 and 1 (current_task at +0x80, rq at +0x100)
//	0x40000-0x43fff four slab pages of 4 task_structs of 0x400 bytes
//	0x80000        vmemmap (64-byte struct pages)
//	0x90000        a task group's cfs_rq
const (
	schedTaskSize = 0x400
	slabPA        = 0x40000
	vmemmapPA     = 0x80000
	cachePA       = 0x9800
	classPA       = 0x9300
	credPA        = 0x9400
	cpu0PA        = 0x10000
	cpu1PA        = 0x12000
	rqOff         = 0x100
	curOff        = 0x80
)

var schedOffsets = map[string]uint64{
	"task_struct.flags": 0x70, "task_struct.exit_state": 0x74, "task_struct.stack": 0x78,
	"task_struct.real_cred": 0x50, "task_struct.sched_class": 0x80,
	"task_struct.se": 0x100, "task_struct.rt": 0x200, "task_struct.dl": 0x280,
	"sched_entity.run_node": 0x10, "sched_entity.my_q": 0x40,
	"sched_rt_entity.run_list": 0, "sched_dl_entity.rb_node": 0,
	"rb_node.rb_right": 8, "rb_node.rb_left": 0x10, "rb_root_cached.rb_root": 0, "rb_root.rb_node": 0,
	"rq.curr": 0, "rq.idle": 8, "rq.cfs": 0x40, "rq.rt": 0x100, "rq.dl": 0x200,
	"cfs_rq.tasks_timeline": 0x10, "rt_rq.active": 0, "rt_prio_array.queue": 0x10, "dl_rq.root": 0,
	"kmem_cache.size": 0x18, "kmem_cache.oo": 0x34, "slab.slab_cache": 0x18, "slab.counters": 0x28,
}

func va(pa uint64) uint64 { return pageOffset + pa }

type schedMem struct {
	b []byte
	k *Kernel
}

func newSchedMem() *schedMem {
	b := make([]byte, 1<<20)
	offs := maps.Clone(testOffsets)
	maps.Copy(offs, schedOffsets)
	syms := map[string]uint64{
		"init_task": va(0x1000), "init_pid_ns": va(0x8000),
		"__per_cpu_offset": va(0x9000), "nr_cpu_ids": va(0x9100), "__cpu_online_mask": va(0x9200),
		"runqueues": rqOff, "current_task": curOff, "fair_sched_class": va(classPA),
		"task_struct_cachep": va(0x9700), "vmemmap_base": va(0x9708),
	}
	k := &Kernel{Mem: mem.FromBytes(b), PageOffset: pageOffset, L: &Layout{Symbols: syms, Offsets: offs,
		Sizes: map[string]uint64{"rt_prio_array.queue": 4 * 16, "page": 64, "task_struct": schedTaskSize}}}
	m := &schedMem{b: b, k: k}
	m.task(0x1000, 0, "swapper/0")
	put64(b, 0x1010, va(0x1010)) // init_task alone on the task list
	put64(b, 0x1018, va(0x1010))
	put64(b, 0x9000, va(cpu0PA))
	put64(b, 0x9008, va(cpu1PA))
	binary.LittleEndian.PutUint32(b[0x9100:], 2)
	b[0x9200] = 3
	for _, cpu := range []uint64{cpu0PA, cpu1PA} {
		rq := cpu + rqOff
		put64(b, rq+0, va(0x1000)) // curr: the idle task
		for i := uint64(0); i < 4; i++ {
			h := rq + 0x100 + 0x10 + 16*i // empty RT lists point to themselves
			put64(b, h, va(h))
			put64(b, h+8, va(h))
		}
	}
	// The slab cache: objects of 0x400 bytes, order 0, 4 per slab; four
	// slab head pages in the page array.
	put64(b, 0x9700, va(cachePA))
	put64(b, 0x9708, va(vmemmapPA))
	binary.LittleEndian.PutUint32(b[cachePA+0x18:], schedTaskSize)
	binary.LittleEndian.PutUint32(b[cachePA+0x34:], 0<<16|4)
	for i := uint64(0); i < 4; i++ {
		pg := vmemmapPA + (slabPA/4096+i)*64
		put64(b, pg+0x18, va(cachePA))
		put64(b, pg+0x28, 4<<16)
	}
	return m
}

// task writes a live, valid task_struct at pa (not linked anywhere).
func (m *schedMem) task(pa uint64, pid int32, comm string) uint64 {
	task(m.b, pa, pid, comm, 0, 0)
	put64(m.b, pa+0x50, va(credPA))
	put64(m.b, pa+0x78, va(0x200000))
	put64(m.b, pa+0x80, va(classPA))
	return va(pa)
}

func (m *schedMem) list(pa uint64) { // link task at pa into the task list after init_task
	b := m.b
	next := binary.LittleEndian.Uint64(b[0x1010:])
	put64(b, pa+0x10, next)
	put64(b, pa+0x18, va(0x1010))
	put64(b, next-pageOffset+8, va(pa+0x10))
	put64(b, 0x1010, va(pa+0x10))
}

// cfsRoot makes the task at pa the root of a CFS tree at cfsRQ (physical).
func (m *schedMem) cfsRoot(cfsRQ, pa uint64) { put64(m.b, cfsRQ+0x10, va(pa+0x100+0x10)) }

func hiddenPIDs(s TaskScan) string {
	var out []string
	for _, h := range s.Hidden {
		out = append(out, h.Comm+":"+strings.Join(h.Views, "+"))
	}
	return strings.Join(out, " ")
}

func TestHiddenTasks(t *testing.T) {
	m := newSchedMem()
	b := m.b
	slot := func(i uint64) uint64 { return slabPA + i*schedTaskSize }
	// Listed tasks, on queues: not hidden.
	m.task(slot(0), 1, "init")
	m.list(slot(0))
	m.task(slot(1), 77, "listed-rt")
	m.list(slot(1))
	// CPU 0: hidden "spin" is the CFS root; its left child is a task
	// group whose own queue holds hidden "grouped"; its right child is
	// init. CPU 1 runs listed-rt on its RT list and "dl" (hidden) in the
	// deadline tree; its current task is hidden "running".
	m.task(slot(2), 66, "spin")
	m.cfsRoot(cpu0PA+rqOff+0x40, slot(2))
	group := uint64(0x20000)                       // a group sched_entity
	put64(b, slot(2)+0x110+0x10, va(group+0x10))   // spin.left = group
	put64(b, slot(2)+0x110+0x8, va(slot(0)+0x110)) // spin.right = init
	put64(b, group+0x40, va(0x90000))              // group.my_q
	m.task(slot(3), 67, "grouped")
	m.cfsRoot(0x90000, slot(3))
	h := uint64(cpu1PA + rqOff + 0x100 + 0x10 + 16*2) // RT priority 2
	put64(b, h, va(slot(1)+0x200))
	put64(b, slot(1)+0x200, va(h))
	m.task(slot(4), 68, "dl")
	put64(b, cpu1PA+rqOff+0x200, va(slot(4)+0x280))
	m.task(slot(5), 69, "running")
	put64(b, cpu1PA+curOff, va(slot(5)))
	// Not hidden: idle threads, a task in do_exit, a zombie, a dead one,
	// garbage and a half-forked child still holding its parent's PID.
	m.task(slot(6), 0, "swapper/1")
	put64(b, cpu1PA+rqOff, va(slot(6)))
	m.task(slot(7), 70, "exiting")
	binary.LittleEndian.PutUint32(b[slot(7)+0x70:], pfExiting)
	m.task(slot(8), 71, "zombie")
	binary.LittleEndian.PutUint32(b[slot(8)+0x74:], 0x20)
	m.task(slot(9), 72, "dead")
	binary.LittleEndian.PutUint32(b[slot(9)+0x28:], taskDead)
	m.task(slot(10), 73, "bad\x01name")
	m.task(slot(11), 74, "noclass")
	put64(b, slot(11)+0x80, va(0x9310))
	m.task(slot(12), 1, "forking")
	// slot 13 is zero (a never-used object), 14 a hidden sleeper, 15 a
	// child past alloc_pid, not yet on the lists (TASK_NEW).
	m.task(slot(14), 75, "sleeper")
	m.task(slot(15), 76, "newborn")
	binary.LittleEndian.PutUint32(b[slot(15)+0x28:], taskNew)

	s, err := m.k.HiddenTasks(nil, true)
	if err != nil || len(s.Errors) != 0 {
		t.Fatalf("%v %v", err, s.Errors)
	}
	want := "spin:runqueue+slab grouped:runqueue+slab dl:runqueue+slab running:vcpu_current+slab sleeper:slab"
	if got := hiddenPIDs(s); got != want {
		t.Fatalf("hidden:\n got %s\nwant %s", got, want)
	}
	if s.Scanned["slab_slabs"] != 4 || s.Scanned["slab_candidates"] != 16 || s.Scanned["runqueue_tasks"] != 7 {
		t.Fatalf("scanned %v", s.Scanned)
	}

	// The vCPU view through a kernel-mode GS base; a user GS is ignored.
	put64(b, cpu1PA+curOff, va(0x1000))
	cur, err := m.k.CurrentTasks([]hv.Registers{{CPL: 0, GSBase: va(cpu0PA - 0x1000)}, {CPL: 3, GSBase: 0x7fff0000}})
	if err != nil || len(cur) != 1 {
		t.Fatalf("%x %v", cur, err)
	}
	m.task(0xf000, 80, "gs")
	put64(b, cpu0PA-0x1000+curOff, va(0xf000))
	if cur, err = m.k.CurrentTasks([]hv.Registers{{CPL: 0, GSBase: va(cpu0PA - 0x1000)}}); err != nil || !slices.Contains(cur, va(0xf000)) {
		t.Fatalf("%x %v", cur, err)
	}
}

// Hostile run queues: loops, wild pointers, deep trees and huge counts
// end the view with an error and leave the others running.
func TestRunQueuesHostile(t *testing.T) {
	for name, poison := range map[string]func(m *schedMem){
		"cfs loop": func(m *schedMem) {
			m.task(slabPA, 66, "spin")
			m.cfsRoot(cpu0PA+rqOff+0x40, slabPA)
			put64(m.b, slabPA+0x110+0x10, va(slabPA+0x110))
		},
		"wild pointer": func(m *schedMem) { put64(m.b, cpu0PA+rqOff+0x40+0x10, 0xdead000000000100) },
		"unmapped":     func(m *schedMem) { put64(m.b, cpu0PA+rqOff+0x40+0x10, va(0x7fff0000)) },
		"rt loop": func(m *schedMem) {
			h := uint64(cpu0PA + rqOff + 0x110)
			put64(m.b, h, va(0x30000))
			put64(m.b, 0x30000, va(0x30010))
			put64(m.b, 0x30010, va(0x30000))
		},
		"deep tree": func(m *schedMem) {
			m.cfsRoot(cpu0PA+rqOff+0x40, 0x30000-0x110)
			for i := uint64(0); i < 200; i++ {
				put64(m.b, 0x30000+i*0x20+0x10, va(0x30000+(i+1)*0x20))
			}
		},
		"group nesting": func(m *schedMem) {
			m.cfsRoot(cpu0PA+rqOff+0x40, 0x30000-0x110)          // node at 0x30000, se at 0x2fff0
			put64(m.b, 0x2fff0+0x40, va(0x31000))                // its my_q
			put64(m.b, 0x31000+0x10, va(0x32000))                // whose tree holds
			put64(m.b, 0x32000-0x10+0x40, va(cpu0PA+rqOff+0x40)) // a group of the root queue
		},
		"cpu count": func(m *schedMem) { binary.LittleEndian.PutUint32(m.b[0x9100:], 1<<30) },
		"cpu base":  func(m *schedMem) { put64(m.b, 0x9008, 0x1234) },
	} {
		t.Run(name, func(t *testing.T) {
			m := newSchedMem()
			m.task(slabPA+0x400, 90, "hidden")
			poison(m)
			if _, err := m.k.RunQueueTasks(); err == nil {
				t.Fatal("accepted")
			}
			s, err := m.k.HiddenTasks(nil, true)
			if err != nil || s.Errors[ViewRunQueue] == nil {
				t.Fatalf("%v %v", err, s.Errors)
			}
			if !strings.Contains(hiddenPIDs(s), "hidden:slab") {
				t.Fatalf("the slab view did not run on: %s (%v)", hiddenPIDs(s), s.Errors)
			}
		})
	}
}

func TestSlabHostile(t *testing.T) {
	for name, poison := range map[string]func(m *schedMem){
		"object size":    func(m *schedMem) { binary.LittleEndian.PutUint32(m.b[cachePA+0x18:], 8) },
		"huge count":     func(m *schedMem) { binary.LittleEndian.PutUint32(m.b[cachePA+0x34:], 0xffff) },
		"huge order":     func(m *schedMem) { binary.LittleEndian.PutUint32(m.b[cachePA+0x34:], 40<<16|4) },
		"wild cachep":    func(m *schedMem) { put64(m.b, 0x9700, 0x1000) },
		"wild vmemmap":   func(m *schedMem) { put64(m.b, 0x9708, 0x1000) },
		"unmapped cache": func(m *schedMem) { put64(m.b, 0x9700, va(0x7fff0000)) },
	} {
		t.Run(name, func(t *testing.T) {
			m := newSchedMem()
			poison(m)
			if _, _, err := m.k.SlabTasks(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// A slab claiming 0x7fff objects yields the cache's 4, and an
	// unreadable page array (vmemmap outside RAM) yields nothing.
	m := newSchedMem()
	put64(m.b, vmemmapPA+(slabPA/4096)*64+0x28, 0x7fff<<16)
	if tasks, slabs, err := m.k.SlabTasks(); err != nil || len(tasks) != 16 || slabs != 4 {
		t.Fatalf("%d %d %v", len(tasks), slabs, err)
	}
	put64(m.b, 0x9708, va(0xfff000))
	if tasks, _, err := m.k.SlabTasks(); err != nil || len(tasks) != 0 {
		t.Fatalf("%d %v", len(tasks), err)
	}
}

// FuzzRunQueues runs the scheduler and slab views over random memory
// around a valid skeleton: errors are fine, panics and hangs are not.
func FuzzRunQueues(f *testing.F) {
	m := newSchedMem()
	f.Add(m.b[:0x20000], uint16(0))
	f.Add(m.b[:0x20000], uint16(0x7fff))
	f.Fuzz(func(t *testing.T, patch []byte, at uint16) {
		m := newSchedMem()
		if len(patch) > 1<<17 {
			return
		}
		// The patch lands over the per-CPU areas, queues and slab.
		copy(m.b[0x8000+uint64(at)*4:], patch)
		m.k.RunQueueTasks()
		m.k.CurrentTasks([]hv.Registers{{GSBase: va(cpu0PA)}})
		tasks, _, _ := m.k.SlabTasks()
		chk, err := m.k.newTaskCheck()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range tasks {
			m.k.liveTask(chk, a)
		}
	})
}

// BenchmarkHiddenTasks: one round of all three views and the two lists
// over the synthetic kernel with nothing hidden (no confirmation round).
func BenchmarkHiddenTasks(b *testing.B) {
	m := newSchedMem()
	m.task(slabPA, 1, "init")
	m.list(slabPA)
	m.cfsRoot(cpu0PA+rqOff+0x40, slabPA)
	for i := 0; i < b.N; i++ {
		s, err := m.k.HiddenTasks(nil, true)
		if err != nil || len(s.Hidden) != 0 {
			b.Fatal(err, s.Hidden)
		}
	}
}

// A task a racing walk missed is recognised as listed by its neighbours
// pointing back at it; one a rootkit unlinked (neighbours joined around
// it, or list_del's poison) is not.
func TestListMembership(t *testing.T) {
	b := make([]byte, 1<<16)
	k := testKernel(b, nil)
	a, x, c := uint64(0x2000), uint64(0x3000), uint64(0x4000) // nodes: a <-> x <-> c
	link := func(from, next, prev uint64) {
		put64(b, from, pageOffset+next)
		put64(b, from+8, pageOffset+prev)
	}
	link(a, x, c)
	link(x, c, a)
	link(c, a, x)
	if !k.linkedListNode(pageOffset + x) {
		t.Fatal("a linked node was not recognised")
	}
	link(a, c, c) // the rootkit joins a and c around x; x keeps its pointers
	link(c, a, a)
	if k.linkedListNode(pageOffset + x) {
		t.Fatal("a node unlinked by joining its neighbours was taken as linked")
	}
	put64(b, x, 0xdead000000000100)
	put64(b, x+8, 0xdead000000000122)
	if k.linkedListNode(pageOffset + x) {
		t.Fatal("a list_del'd node was taken as linked")
	}
}

// inPIDTable looks a PID up in the IDR (not a walk) and requires its
// struct pid to lead to the task.
func TestPIDTableLookup(t *testing.T) {
	m := newSchedMem()
	b := m.b
	task := m.task(slabPA, 5, "looked-up")
	node, pidPA := uint64(0x30000), uint64(0x31000)
	put64(b, 0x8010, va(node)|2) // init_pid_ns.idr.idr_rt.xa_head: a node
	b[node] = 0                  // shift 0: slots by the PID's low 6 bits
	put64(b, node+0x28+8*5, va(pidPA))
	put64(b, pidPA+0x10, task+0x60) // pid.tasks[PIDTYPE_PID].first
	if !m.k.inPIDTable(task, 5) {
		t.Fatal("a task its PID maps to was not found")
	}
	if m.k.inPIDTable(task, 6) {
		t.Fatal("another PID was taken as the task's")
	}
	put64(b, pidPA+0x10, 0)
	if m.k.inPIDTable(task, 5) {
		t.Fatal("a pid no longer leading to the task was taken as its")
	}
	put64(b, pidPA+0x10, task+0x60)
	put64(b, node+0x28+8*5, 0) // the rootkit clears the IDR slot
	if m.k.inPIDTable(task, 5) {
		t.Fatal("a cleared IDR slot was taken as the task's")
	}
	put64(b, 0x8010, va(node)|2)
	put64(b, node+0x28+8*5, va(node)|2) // a node pointing at itself
	if m.k.inPIDTable(task, 5) {
		t.Fatal("a looping tree was taken as a hit")
	}
}
