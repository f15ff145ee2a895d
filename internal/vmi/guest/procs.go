package guest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// Process is one task as rebuilt from guest memory.
type Process struct {
	PID          int32  `json:"pid"`
	TGID         int32  `json:"tgid"`
	PPID         int32  `json:"ppid"`
	Comm         string `json:"comm"`
	UID          uint32 `json:"uid"`
	GID          uint32 `json:"gid"`
	State        uint32 `json:"state"`
	StartNS      uint64 `json:"start_ns"` // since boot
	KernelThread bool   `json:"kernel_thread"`
	Task         uint64 `json:"task"` // address of its task_struct
}

// MaxTasks bounds a walk of the task list or the PID table.
const MaxTasks = 1 << 16

// walkTime bounds one walk.
const walkTime = 2 * time.Second

// ReadTask rebuilds one task_struct at task.
func (k *Kernel) ReadTask(task uint64) (Process, error) {
	p := Process{Task: task}
	var err error
	i32 := func(path string) int32 {
		if err != nil {
			return 0
		}
		var off uint64
		if off, err = k.Off(path); err != nil {
			return 0
		}
		var v uint32
		v, err = k.U32(task + off)
		return int32(v)
	}
	ptr := func(base uint64, path string) uint64 {
		if err != nil {
			return 0
		}
		var off uint64
		if off, err = k.Off(path); err != nil {
			return 0
		}
		var v uint64
		v, err = k.U64(base + off)
		return v
	}
	p.PID = i32("task_struct.pid")
	p.TGID = i32("task_struct.tgid")
	p.State = uint32(i32(k.stateField()))
	if err != nil {
		return p, err
	}
	off, err := k.Off("task_struct.comm")
	if err != nil {
		return p, err
	}
	var comm [16]byte
	if err := k.Read(task+off, comm[:]); err != nil {
		return p, err
	}
	if i := bytes.IndexByte(comm[:], 0); i >= 0 {
		p.Comm = string(comm[:i])
	} else {
		p.Comm = string(comm[:])
	}
	p.Comm = printable(p.Comm)
	mm := ptr(task, "task_struct.mm")
	p.KernelThread = err == nil && mm == 0
	if parent := ptr(task, "task_struct.real_parent"); err == nil && parent != 0 {
		if off, e := k.Off("task_struct.tgid"); e == nil {
			if v, e := k.U32(parent + off); e == nil {
				p.PPID = int32(v)
			}
		}
	}
	if cred := ptr(task, "task_struct.cred"); err == nil && cred != 0 {
		if off, e := k.Off("cred.uid"); e == nil {
			p.UID, _ = k.U32(cred + off)
		}
		if off, e := k.Off("cred.gid"); e == nil {
			p.GID, _ = k.U32(cred + off)
		}
	}
	if off, e := k.Off(k.startField()); e == nil {
		p.StartNS, _ = k.U64(task + off)
	}
	return p, err
}

func (k *Kernel) stateField() string {
	if _, ok := k.L.Offsets["task_struct.__state"]; ok {
		return "task_struct.__state"
	}
	return "task_struct.state"
}

func (k *Kernel) startField() string {
	if _, ok := k.L.Offsets["task_struct.start_time"]; ok {
		return "task_struct.start_time"
	}
	return "task_struct.start_boottime"
}

// printable replaces what a guest could use to garble an operator's
// terminal in a process name.
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

// retries is how often a walk that met a torn structure is repeated: the
// guest runs while we read, and a task exiting mid-walk is normal.
const retries = 3

func retry[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for i := 0; i < retries; i++ {
		if v, err = f(); err == nil || errors.Is(err, ErrBudget) {
			return v, err
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
	return v, err
}

// TaskList walks init_task.tasks: the processes (thread-group leaders) the
// guest's own tools list. A walk that meets a torn structure is repeated.
func (k *Kernel) TaskList() ([]Process, error) { return retry(k.taskList) }

// PIDTable walks the PID namespace's IDR (an xarray of struct pid): every
// task with a PID, found independently of the task list, so a process
// unlinked from the list (DKOM) still shows here.
func (k *Kernel) PIDTable() ([]Process, error) { return retry(k.pidTable) }

func (k *Kernel) taskList() ([]Process, error) {
	initTask, err := k.Sym("init_task")
	if err != nil {
		return nil, err
	}
	offTasks, err := k.Off("task_struct.tasks")
	if err != nil {
		return nil, err
	}
	first, err := k.ReadTask(initTask)
	if err != nil {
		return nil, fmt.Errorf("init_task: %w", err)
	}
	out := []Process{first}
	err = k.walkList(initTask+offTasks, "the task list", MaxTasks, func(e uint64) error {
		p, err := k.ReadTask(e - offTasks)
		if err != nil {
			return fmt.Errorf("task at %#x: %w", e-offTasks, err)
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

func (k *Kernel) pidTable() ([]Process, error) {
	ns, err := k.Sym("init_pid_ns")
	if err != nil {
		return nil, err
	}
	offs := map[string]uint64{}
	for _, p := range []string{"pid_namespace.idr", "idr.idr_rt", "xarray.xa_head", "xa_node.shift", "xa_node.slots",
		"pid.tasks", "task_struct.pid_links"} {
		if offs[p], err = k.Off(p); err != nil {
			return nil, err
		}
	}
	b := NewBudget(8*MaxTasks, walkTime)
	var out []Process
	seenNode := map[uint64]bool{}
	var walk func(entry uint64, depth int) error
	walk = func(entry uint64, depth int) error {
		if err := b.Take(); err != nil {
			return err
		}
		switch {
		case entry == 0:
			return nil
		case entry&3 == 2 && entry > 4096: // an internal node
			node := entry &^ 3
			if depth > 12 || seenNode[node] {
				return fmt.Errorf("the PID table's tree is malformed at %#x", node)
			}
			seenNode[node] = true
			var slots [64 * 8]byte
			if err := k.Read(node+offs["xa_node.slots"], slots[:]); err != nil {
				return err
			}
			for i := 0; i < 64; i++ {
				if err := walk(binary.LittleEndian.Uint64(slots[8*i:]), depth+1); err != nil {
					return err
				}
			}
			return nil
		case entry&3 != 0:
			return nil // value or retry entries
		}
		first, err := k.U64(entry + offs["pid.tasks"]) // tasks[PIDTYPE_PID].first
		if err != nil || first == 0 {
			return nil // a pid without a task (being freed)
		}
		p, err := k.ReadTask(first - offs["task_struct.pid_links"])
		if err != nil {
			return nil
		}
		if len(out) >= MaxTasks {
			return ErrBudget
		}
		out = append(out, p)
		return nil
	}
	root, err := k.U64(ns + offs["pid_namespace.idr"] + offs["idr.idr_rt"] + offs["xarray.xa_head"])
	if err != nil {
		return nil, err
	}
	if err := walk(root, 0); err != nil {
		return out, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// HiddenProcesses compares the two views: a thread-group leader with a PID
// that the task list does not reach is hidden. Both views are taken twice
// and only what is missing both times is reported (processes come and go
// while we read).
func (k *Kernel) HiddenProcesses() ([]Process, error) {
	hidden, err := confirmed(func() (map[uint64]Process, error) {
		list, err := k.TaskList()
		if err != nil {
			return nil, fmt.Errorf("task list: %w", err)
		}
		table, err := k.PIDTable()
		if err != nil {
			return nil, fmt.Errorf("PID table: %w", err)
		}
		inList := map[uint64]bool{}
		for _, p := range list {
			inList[p.Task] = true
		}
		missing := map[uint64]Process{}
		for _, p := range table {
			if p.PID == p.TGID && p.PID != 0 && !inList[p.Task] && !k.inTaskList(p.Task) {
				missing[p.Task] = p
			}
		}
		return missing, nil
	})
	out := slices.Collect(maps.Values(hidden))
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, err
}

// inTaskList reports whether the task at task is linked into the task
// list: its tasks node's neighbours point back at it. A walk of the list
// while the guest runs can step onto a task that was just freed and
// reused and so skip a stretch of the list; a task the walk missed but
// whose neighbours hold it is not unlinked. One unlinked by a rootkit
// (list_del, or its neighbours joined around it) fails this.
func (k *Kernel) inTaskList(task uint64) bool {
	off, err := k.Off("task_struct.tasks")
	if err != nil {
		return false
	}
	return k.linkedListNode(task + off)
}

// linkedListNode reports whether a list_head's neighbours point back at it.
func (k *Kernel) linkedListNode(n uint64) bool {
	next, err1 := k.U64(n)
	prev, err2 := k.U64(n + 8)
	if err1 != nil || err2 != nil || next == n || !kernelAddr(next) || !kernelAddr(prev) {
		return false
	}
	back, err1 := k.U64(next + 8)
	fwd, err2 := k.U64(prev)
	return err1 == nil && err2 == nil && back == n && fwd == n
}

// inPIDTable reports whether the PID table maps the task's PID to it:
// the init namespace's IDR, looked up by the PID number (not walked),
// holds a struct pid whose first PIDTYPE_PID task is this task. A walk of
// the whole tree can race the guest; a lookup is a handful of reads. A
// rootkit that clears the IDR slot or unhooks the task from its pid fails
// this.
func (k *Kernel) inPIDTable(task uint64, pid int32) bool {
	ns, err := k.Sym("init_pid_ns")
	if err != nil || pid <= 0 {
		return false
	}
	offs, err := k.offsets("pid_namespace.idr", "idr.idr_rt", "xarray.xa_head", "xa_node.shift", "xa_node.slots",
		"pid.tasks", "task_struct.pid_links")
	if err != nil {
		return false
	}
	entry, err := k.U64(ns + offs["pid_namespace.idr"] + offs["idr.idr_rt"] + offs["xarray.xa_head"])
	if err == nil && entry&3 != 2 && pid != 0 {
		return false // a tree without nodes holds index 0 only
	}
	for depth := 0; err == nil && entry&3 == 2 && entry > 4096; depth++ {
		node := entry &^ 3
		var shift [1]byte
		if depth > 12 || k.Read(node+offs["xa_node.shift"], shift[:]) != nil || shift[0] > 60 {
			return false
		}
		i := (uint64(pid) >> shift[0]) & 63
		entry, err = k.U64(node + offs["xa_node.slots"] + 8*i)
	}
	if err != nil || entry == 0 || entry&3 != 0 {
		return false
	}
	first, err := k.U64(entry + offs["pid.tasks"])
	return err == nil && first == task+offs["task_struct.pid_links"]
}

// confirmed takes a comparison of two views twice, 50 ms apart, and keeps
// what both rounds found missing: the guest runs while we read, and a task
// or module that comes or goes between two walks is not hidden.
func confirmed[T any](diff func() (map[uint64]T, error)) (map[uint64]T, error) {
	first, err := diff()
	if err != nil || len(first) == 0 {
		return nil, err
	}
	time.Sleep(50 * time.Millisecond)
	second, err := diff()
	if err != nil {
		return nil, err
	}
	for a := range first {
		if _, still := second[a]; !still {
			delete(first, a)
		}
	}
	return first, nil
}
