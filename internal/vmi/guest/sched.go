package guest

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/bulwark-project/bulwark/internal/hv"
)

// Views of tasks that do not depend on the task list or the PID table. A
// rootkit can unlink a task from both lists and the system keeps running;
// it cannot take a runnable task off its CPU's run queue, or a running one
// off its CPU, without the task stopping, and the task_struct stays in its
// slab cache for as long as the task lives.
const (
	ViewCurrent  = "vcpu_current" // each CPU's current_task (and each vCPU's GS base)
	ViewRunQueue = "runqueue"     // rq->curr and the CFS, RT and deadline queues
	ViewSlab     = "slab"         // the task_struct slab cache, carved
)

// MaxCPUs bounds the CPUs walked (nr_cpu_ids is the guest's to set).
const MaxCPUs = 1024

// Task flags and states (include/linux/sched.h), stable for many years.
const (
	pfIdle    = 0x2 // PF_IDLE: an idle thread (swapper/N)
	pfExiting = 0x4 // PF_EXITING: in do_exit
	taskDead  = 0x80
	// taskNew: TASK_NEW, set by sched_fork and cleared by
	// wake_up_new_task once the child is on the lists.
	taskNew = 0x800
	pidMax  = 4 << 20 // PID_MAX_LIMIT on 64-bit
)

// maxGroupDepth bounds the descent into group scheduling entities (task
// groups nest as cgroups do; the kernel has no fixed limit, real systems a
// handful of levels).
const maxGroupDepth = 32

// maxRBDepth bounds the height of a red-black tree: a valid one of n nodes
// is at most 2·log2(n+1) high, 34 for MaxTasks.
const maxRBDepth = 64

// kernelAddr reports whether a is in the upper (kernel) half.
func kernelAddr(a uint64) bool { return a >= 0xffff800000000000 }

// perCPUSym is the per-CPU offset of a per-CPU variable: x86-64 links the
// per-CPU section at 0 (the symbol's value is an offset that KASLR does not
// move); a kernel that links it elsewhere has a relocated address instead.
func (k *Kernel) perCPUSym(name string) (uint64, error) {
	a, ok := k.L.Symbols[name]
	if !ok && k.L.Lookup != nil {
		a, ok = k.L.Lookup(name)
	}
	if !ok {
		return 0, fmt.Errorf("symbol %s not in the profile", name)
	}
	if a < 1<<32 {
		return a, nil
	}
	return a + k.Slide, nil
}

// CPUBases returns __per_cpu_offset[cpu] of every online CPU, by CPU
// number: a per-CPU variable of that CPU lives at its offset plus this.
func (k *Kernel) CPUBases() (map[int]uint64, error) {
	nrSym, err := k.Sym("nr_cpu_ids")
	if err != nil {
		return nil, err
	}
	nr, err := k.U32(nrSym)
	if err != nil {
		return nil, fmt.Errorf("nr_cpu_ids: %w", err)
	}
	if nr == 0 || nr > MaxCPUs {
		return nil, fmt.Errorf("nr_cpu_ids is %d, outside 1..%d", nr, MaxCPUs)
	}
	offSym, err := k.Sym("__per_cpu_offset")
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 8*nr)
	if err := k.Read(offSym, raw); err != nil {
		return nil, fmt.Errorf("__per_cpu_offset: %w", err)
	}
	online := make([]byte, (nr+63)/64*8)
	if a, err := k.Sym("__cpu_online_mask"); err != nil || k.Read(a, online) != nil {
		for i := range online {
			online[i] = 0xff // no mask: every possible CPU
		}
	}
	out := map[int]uint64{}
	for cpu := 0; cpu < int(nr); cpu++ {
		if online[cpu/8]&(1<<(cpu%8)) == 0 {
			continue
		}
		base := binary.LittleEndian.Uint64(raw[8*cpu:])
		if !kernelAddr(base) {
			return nil, fmt.Errorf("__per_cpu_offset[%d] is %#x, not a kernel address", cpu, base)
		}
		out[cpu] = base
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no online CPU among %d", nr)
	}
	return out, nil
}

// currentTaskOff is the per-CPU offset of the current task pointer.
func (k *Kernel) currentTaskOff() (uint64, error) {
	if a, err := k.perCPUSym("current_task"); err == nil {
		return a, nil
	}
	hot, err := k.perCPUSym("pcpu_hot") // 6.2+
	if err != nil {
		return 0, fmt.Errorf("neither current_task nor pcpu_hot in the profile")
	}
	off, err := k.Off("pcpu_hot.current_task")
	if err != nil {
		return 0, err
	}
	return hot + off, nil
}

// CurrentTasks returns the task each online CPU runs now, read from its
// per-CPU current task pointer, and for each vCPU in kernel mode through
// its GS base (which then points at its per-CPU area: a second path that
// does not trust __per_cpu_offset).
func (k *Kernel) CurrentTasks(regs []hv.Registers) ([]uint64, error) {
	off, err := k.currentTaskOff()
	if err != nil {
		return nil, err
	}
	bases, err := k.CPUBases()
	if err != nil {
		return nil, err
	}
	set := map[uint64]bool{}
	for _, cpu := range slices.Sorted(maps.Keys(bases)) {
		t, err := k.U64(bases[cpu] + off)
		if err != nil {
			return nil, fmt.Errorf("CPU %d current task: %w", cpu, err)
		}
		if t != 0 {
			set[t] = true
		}
	}
	for _, r := range regs {
		// In user mode GS holds the process's own base: nothing to read.
		if r.CPL != 0 || !kernelAddr(r.GSBase) {
			continue
		}
		if t, err := k.U64(r.GSBase + off); err == nil && t != 0 {
			set[t] = true
		}
	}
	return sortedKeys(set), nil
}

// schedOffs are the offsets the run-queue walk needs.
type schedOffs struct {
	curr, cfs, rt, dl                    uint64
	timeline, rbLeft, rbRight            uint64
	seRunNode, seMyQ, taskSE             uint64
	rtActive, rtQueue, rtRunList, taskRT uint64
	rtMyQ                                uint64
	hasRTMyQ, hasSEMyQ                   bool
	rtLists                              int
	dlRoot, dlRBNode, taskDL             uint64
}

func (k *Kernel) schedOffsets() (schedOffs, error) {
	var o schedOffs
	var err error
	get := func(path string) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = k.Off(path)
		return v
	}
	o.curr, o.cfs, o.rt, o.dl = get("rq.curr"), get("rq.cfs"), get("rq.rt"), get("rq.dl")
	o.timeline = get("cfs_rq.tasks_timeline") // rb_root_cached: rb_root first
	o.rbLeft, o.rbRight = get("rb_node.rb_left"), get("rb_node.rb_right")
	o.seRunNode, o.taskSE = get("sched_entity.run_node"), get("task_struct.se")
	o.rtActive, o.rtQueue = get("rt_rq.active"), get("rt_prio_array.queue")
	o.rtRunList, o.taskRT = get("sched_rt_entity.run_list"), get("task_struct.rt")
	o.dlRoot, o.dlRBNode, o.taskDL = get("dl_rq.root"), get("sched_dl_entity.rb_node"), get("task_struct.dl")
	if err != nil {
		return o, err
	}
	for _, p := range []string{"rb_root_cached.rb_root", "rb_root.rb_node"} {
		if v, ok := k.L.Offsets[p]; ok && v != 0 {
			return o, fmt.Errorf("%s is at %d, the walk expects the tree root first", p, v)
		}
	}
	o.seMyQ, o.hasSEMyQ = k.L.Offsets["sched_entity.my_q"]
	o.rtMyQ, o.hasRTMyQ = k.L.Offsets["sched_rt_entity.my_q"]
	// MAX_RT_PRIO lists; the profile knows the array's size.
	o.rtLists = 100
	if sz, ok := k.L.Sizes["rt_prio_array.queue"]; ok && sz/16 > 0 && sz/16 <= 1024 {
		o.rtLists = int(sz / 16)
	}
	return o, nil
}

// RunQueueTasks returns every task on a CPU's run queue: rq->curr, the
// CFS tree (descending into task groups), the RT priority lists and the
// deadline tree. A queued task cannot be hidden from these without being
// taken off its CPU. The walk is bounded in steps and time as a whole.
func (k *Kernel) RunQueueTasks() ([]uint64, error) {
	o, err := k.schedOffsets()
	if err != nil {
		return nil, err
	}
	rqOff, err := k.perCPUSym("runqueues")
	if err != nil {
		return nil, err
	}
	bases, err := k.CPUBases()
	if err != nil {
		return nil, err
	}
	w := &rqWalk{k: k, o: o, b: NewBudget(8*MaxTasks, walkTime), seen: map[uint64]bool{}, tasks: map[uint64]bool{}}
	for _, cpu := range slices.Sorted(maps.Keys(bases)) {
		rq := bases[cpu] + rqOff
		if err := w.rq(rq); err != nil {
			return sortedKeys(w.tasks), fmt.Errorf("CPU %d run queue at %#x: %w", cpu, rq, err)
		}
	}
	return sortedKeys(w.tasks), nil
}

// rqWalk is one walk over all run queues. seen holds every tree node and
// list entry visited: each is on one queue once, so a second visit is a
// loop planted in the structure.
type rqWalk struct {
	k     *Kernel
	o     schedOffs
	b     *Budget
	seen  map[uint64]bool
	tasks map[uint64]bool
}

func (w *rqWalk) add(task uint64) error {
	if len(w.tasks) >= MaxTasks {
		return ErrBudget
	}
	w.tasks[task] = true
	return nil
}

func (w *rqWalk) visit(a uint64) error {
	if err := w.b.Take(); err != nil {
		return err
	}
	if a&7 != 0 || !kernelAddr(a) {
		return fmt.Errorf("node pointer %#x is not an aligned kernel address", a)
	}
	if w.seen[a] {
		return fmt.Errorf("node %#x is reached twice (a loop)", a)
	}
	w.seen[a] = true
	return nil
}

func (w *rqWalk) rq(rq uint64) error {
	curr, err := w.k.U64(rq + w.o.curr)
	if err != nil {
		return fmt.Errorf("curr: %w", err)
	}
	if curr != 0 {
		if err := w.add(curr); err != nil {
			return err
		}
	}
	if err := w.cfs(rq+w.o.cfs, 0); err != nil {
		return fmt.Errorf("CFS: %w", err)
	}
	if err := w.rt(rq+w.o.rt, 0); err != nil {
		return fmt.Errorf("RT: %w", err)
	}
	root, err := w.k.U64(rq + w.o.dl + w.o.dlRoot)
	if err != nil {
		return fmt.Errorf("deadline: %w", err)
	}
	if err := w.rbTree(root, func(node uint64) error { return w.add(node - w.o.dlRBNode - w.o.taskDL) }); err != nil {
		return fmt.Errorf("deadline: %w", err)
	}
	return nil
}

// cfs walks one cfs_rq's tree; an entity with its own queue (my_q) is a
// task group, whose tasks are in that queue.
func (w *rqWalk) cfs(cfsRQ uint64, depth int) error {
	if depth > maxGroupDepth {
		return fmt.Errorf("task groups nest deeper than %d", maxGroupDepth)
	}
	root, err := w.k.U64(cfsRQ + w.o.timeline)
	if err != nil {
		return err
	}
	return w.rbTree(root, func(node uint64) error {
		se := node - w.o.seRunNode
		if w.o.hasSEMyQ {
			myQ, err := w.k.U64(se + w.o.seMyQ)
			if err != nil {
				return err
			}
			if myQ != 0 {
				return w.cfs(myQ, depth+1)
			}
		}
		return w.add(se - w.o.taskSE)
	})
}

// rt walks an rt_rq's priority lists; with RT group scheduling an entity
// may be a group (my_q), as in CFS.
func (w *rqWalk) rt(rtRQ uint64, depth int) error {
	if depth > maxGroupDepth {
		return fmt.Errorf("RT groups nest deeper than %d", maxGroupDepth)
	}
	heads := rtRQ + w.o.rtActive + w.o.rtQueue
	raw := make([]byte, 16*w.o.rtLists)
	if err := w.k.Read(heads, raw); err != nil {
		return err
	}
	for i := 0; i < w.o.rtLists; i++ {
		head := heads + uint64(16*i)
		next := binary.LittleEndian.Uint64(raw[16*i:])
		for next != head {
			if err := w.visit(next); err != nil {
				return fmt.Errorf("priority %d: %w", i, err)
			}
			rtSE := next - w.o.rtRunList
			isGroup := false
			if w.o.hasRTMyQ {
				myQ, err := w.k.U64(rtSE + w.o.rtMyQ)
				if err != nil {
					return err
				}
				if myQ != 0 {
					isGroup = true
					if err := w.rt(myQ, depth+1); err != nil {
						return err
					}
				}
			}
			if !isGroup {
				if err := w.add(rtSE - w.o.taskRT); err != nil {
					return err
				}
			}
			var err error
			if next, err = w.k.U64(next); err != nil {
				return fmt.Errorf("priority %d: %w", i, err)
			}
		}
	}
	return nil
}

// rbTree calls fn for every node of a red-black tree, depth-first with an
// explicit stack bounded by maxRBDepth.
func (w *rqWalk) rbTree(root uint64, fn func(node uint64) error) error {
	type item struct {
		node  uint64
		depth int
	}
	stack := []item{{root, 0}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.node == 0 {
			continue
		}
		if it.depth > maxRBDepth {
			return fmt.Errorf("tree deeper than %d at %#x", maxRBDepth, it.node)
		}
		if err := w.visit(it.node); err != nil {
			return err
		}
		left, err := w.k.U64(it.node + w.o.rbLeft)
		if err != nil {
			return err
		}
		right, err := w.k.U64(it.node + w.o.rbRight)
		if err != nil {
			return err
		}
		if err := fn(it.node); err != nil {
			return err
		}
		stack = append(stack, item{right, it.depth + 1}, item{left, it.depth + 1})
	}
	return nil
}

func sortedKeys(m map[uint64]bool) []uint64 {
	out := make([]uint64, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// taskCheck holds what validating a task found elsewhere needs, looked up
// once per scan.
type taskCheck struct {
	classes               map[uint64]bool // *_sched_class addresses
	offClass, offExit     uint64
	offStack, offRealCred uint64
	offFlags, offComm     uint64
	hasClass, hasExit     bool
	hasStack, hasRealCred bool
}

func (k *Kernel) newTaskCheck() (*taskCheck, error) {
	c := &taskCheck{classes: map[uint64]bool{}}
	var err error
	if c.offFlags, err = k.Off("task_struct.flags"); err != nil {
		return nil, err
	}
	if c.offComm, err = k.Off("task_struct.comm"); err != nil {
		return nil, err
	}
	c.offClass, c.hasClass = k.L.Offsets["task_struct.sched_class"]
	c.offExit, c.hasExit = k.L.Offsets["task_struct.exit_state"]
	c.offStack, c.hasStack = k.L.Offsets["task_struct.stack"]
	c.offRealCred, c.hasRealCred = k.L.Offsets["task_struct.real_cred"]
	for _, s := range []string{"stop_sched_class", "dl_sched_class", "rt_sched_class", "fair_sched_class", "idle_sched_class", "ext_sched_class"} {
		if a, err := k.Sym(s); err == nil {
			c.classes[a] = true
		}
	}
	if len(c.classes) == 0 {
		c.hasClass = false
	}
	return c, nil
}

// liveTask validates a task_struct found by a view other than the lists
// and rebuilds it. It refuses what is not a live, ordinary task: the idle
// threads (PID 0, PF_IDLE), tasks in do_exit or already dead (their
// task_struct outlives their list entries), and anything inconsistent —
// a PID out of range, a name that is not printable text, a stack, cred or
// scheduling class that does not point where the kernel's own do (the
// last is Volatility's psscan test).
func (k *Kernel) liveTask(c *taskCheck, a uint64) (Process, bool) {
	if !kernelAddr(a) || a&7 != 0 {
		return Process{}, false
	}
	p, err := k.ReadTask(a)
	if err != nil || p.PID <= 0 || p.PID > pidMax || p.TGID <= 0 || p.TGID > pidMax {
		return p, false
	}
	flags, err := k.U32(a + c.offFlags)
	if err != nil || flags&(pfIdle|pfExiting) != 0 || p.State&taskDead != 0 {
		return p, false
	}
	var comm [16]byte
	if k.Read(a+c.offComm, comm[:]) != nil || comm[0] == 0 {
		return p, false
	}
	for _, ch := range comm {
		if ch == 0 {
			break
		}
		if ch < 0x20 || ch >= 0x7f {
			return p, false
		}
	}
	if c.hasExit {
		if st, err := k.U32(a + c.offExit); err != nil || st != 0 {
			return p, false
		}
	}
	if c.hasStack {
		if s, err := k.U64(a + c.offStack); err != nil || !kernelAddr(s) || s&0xfff != 0 {
			return p, false
		}
	}
	if c.hasRealCred {
		cred, err := k.U64(a + c.offRealCred)
		if err != nil || !kernelAddr(cred) || cred&7 != 0 {
			return p, false
		}
		if _, err := k.U64(cred); err != nil {
			return p, false
		}
	}
	if c.hasClass {
		if cl, err := k.U64(a + c.offClass); err != nil || !c.classes[cl] {
			return p, false
		}
	}
	return p, true
}

// HiddenTask is a live task that a scheduler or slab view sees and that
// neither the task list nor the PID table reaches.
type HiddenTask struct {
	Process
	Views []string `json:"views"`
}

// TaskScan is the result of HiddenTasks: what was hidden, what each view
// cost (Scanned: counts, and microseconds as "<view>_us") and which views
// failed (the others still ran).
type TaskScan struct {
	Hidden  []HiddenTask
	Scanned map[string]int
	Errors  map[string]error // by view name
}

// HiddenTasks compares the views that a rootkit cannot empty without
// breaking the system (each CPU's current task, the run queues and, with
// slab, the task_struct slab cache) with the task list and the PID table.
// Like HiddenProcesses it takes every view twice and reports only what is
// missing both times. It fails only when the lists themselves cannot be
// read (there would be nothing to compare with); a failing view is in
// Errors and the others still count.
func (k *Kernel) HiddenTasks(regs []hv.Registers, slab bool) (TaskScan, error) {
	var scan TaskScan
	chk, err := k.newTaskCheck()
	if err != nil {
		return scan, err
	}
	hidden, err := confirmed(func() (map[uint64]HiddenTask, error) {
		scan.Scanned, scan.Errors = map[string]int{}, map[string]error{}
		return k.hiddenTasksOnce(chk, regs, slab, &scan)
	})
	if err != nil {
		return scan, err
	}
	for _, h := range hidden {
		scan.Hidden = append(scan.Hidden, h)
	}
	sort.Slice(scan.Hidden, func(i, j int) bool { return scan.Hidden[i].PID < scan.Hidden[j].PID })
	return scan, nil
}

func (k *Kernel) hiddenTasksOnce(chk *taskCheck, regs []hv.Registers, slab bool, scan *TaskScan) (map[uint64]HiddenTask, error) {
	list, err := k.TaskList()
	if err != nil {
		return nil, fmt.Errorf("task list: %w", err)
	}
	table, err := k.PIDTable()
	if err != nil {
		return nil, fmt.Errorf("PID table: %w", err)
	}
	known := map[uint64]bool{}
	pidOwner := map[int32]bool{}
	for _, p := range append(list, table...) {
		known[p.Task] = true
		pidOwner[p.PID] = true
	}
	seen := map[uint64][]string{}
	run := func(view string, count string, f func() ([]uint64, error)) {
		start := time.Now()
		tasks, err := f()
		scan.Scanned[view+"_us"] = int(time.Since(start).Microseconds())
		scan.Scanned[count] = len(tasks)
		if err != nil {
			scan.Errors[view] = err
		}
		for _, t := range tasks {
			seen[t] = append(seen[t], view)
		}
	}
	run(ViewCurrent, "vcpu_current_tasks", func() ([]uint64, error) { return k.CurrentTasks(regs) })
	run(ViewRunQueue, "runqueue_tasks", k.RunQueueTasks)
	if slab {
		run(ViewSlab, "slab_candidates", func() ([]uint64, error) {
			tasks, slabs, err := k.SlabTasks()
			scan.Scanned["slab_slabs"] = slabs
			return tasks, err
		})
	}
	missing := map[uint64]HiddenTask{}
	for a, views := range seen {
		if known[a] {
			continue
		}
		p, ok := k.liveTask(chk, a)
		if !ok {
			continue
		}
		// Linked into either list, only missed by a walk that raced the
		// guest (a freed and reused task under the walker): not hidden.
		if k.inTaskList(a) || k.inPIDTable(a, p.PID) {
			continue
		}
		// A child in the middle of fork is in the slab before it is in
		// the lists, still carrying its parent's PID (copied with the
		// whole task_struct) until alloc_pid: seen only in the slab, a
		// PID that a listed task owns is not evidence of hiding.
		// After alloc_pid it carries its own PID and stays TASK_NEW until
		// wake_up_new_task, which runs after the child is on both lists;
		// a TASK_NEW task never runs, so one seen only in the slab is not
		// hiding either.
		if len(views) == 1 && views[0] == ViewSlab && (pidOwner[p.PID] || p.State&taskNew != 0) {
			continue
		}
		missing[a] = HiddenTask{Process: p, Views: views}
	}
	return missing, nil
}
