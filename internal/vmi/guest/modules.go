package guest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Module is a loadable kernel module as rebuilt from guest memory.
type Module struct {
	Name   string `json:"name"`
	Base   uint64 `json:"base,omitempty"` // core text
	Size   uint64 `json:"size,omitempty"`
	State  uint32 `json:"state"`
	Module uint64 `json:"module"` // address of its struct module
}

// MaxModules bounds a walk of either module view.
const MaxModules = 4096

// walkList follows a list_head ring from head, calling fn with each entry
// (the list_head's own address), bounded in entries and time and
// cycle-checked.
func (k *Kernel) walkList(head uint64, what string, max int, fn func(entry uint64) error) error {
	b := NewBudget(max, walkTime)
	seen := map[uint64]bool{head: true}
	next, err := k.U64(head)
	for err == nil && next != head {
		if err = b.Take(); err != nil {
			break
		}
		if seen[next] {
			return fmt.Errorf("%s loops back to %#x", what, next)
		}
		seen[next] = true
		if err = fn(next); err != nil {
			break
		}
		next, err = k.U64(next)
	}
	return err
}

// ReadModule rebuilds the struct module at mod.
func (k *Kernel) ReadModule(mod uint64) (Module, error) {
	m := Module{Module: mod}
	off, err := k.Off("module.name")
	if err != nil {
		return m, err
	}
	var name [56]byte
	if err := k.Read(mod+off, name[:]); err != nil {
		return m, err
	}
	if i := bytes.IndexByte(name[:], 0); i >= 0 {
		m.Name = printable(string(name[:i]))
	} else {
		m.Name = printable(string(name[:]))
	}
	if off, err := k.Off("module.state"); err == nil {
		m.State, _ = k.U32(mod + off)
	}
	for _, p := range [][2]string{{"module.core_layout.base", "module.core_layout.size"}, {"module.mem[0].base", "module.mem[0].size"}} {
		if bo, err := k.Off(p[0]); err == nil {
			m.Base, _ = k.U64(mod + bo)
			if so, err := k.Off(p[1]); err == nil {
				sz, _ := k.U32(mod + so)
				m.Size = uint64(sz)
			}
			break
		}
	}
	return m, nil
}

// Modules walks the kernel's `modules` list: what lsmod shows.
func (k *Kernel) Modules() ([]Module, error) { return retry(k.modules) }

// SysfsModules walks module_kset's kobjects (/sys/module), an independent
// view: a module unlinked from `modules` keeps its kobject. Built-in
// "modules" (parameters only) have no struct module and are skipped.
func (k *Kernel) SysfsModules() ([]Module, error) { return retry(k.sysfsModules) }

func (k *Kernel) modules() ([]Module, error) {
	head, err := k.Sym("modules")
	if err != nil {
		return nil, err
	}
	off, err := k.Off("module.list")
	if err != nil {
		return nil, err
	}
	var out []Module
	err = k.walkList(head, "the module list", MaxModules, func(e uint64) error {
		m, err := k.ReadModule(e - off)
		if err == nil {
			out = append(out, m)
		}
		return err
	})
	return out, err
}

func (k *Kernel) sysfsModules() ([]Module, error) {
	ksetPtr, err := k.Sym("module_kset")
	if err != nil {
		return nil, err
	}
	kset, err := k.U64(ksetPtr)
	if err != nil {
		return nil, err
	}
	offs := map[string]uint64{}
	for _, p := range []string{"kset.list", "kobject.entry", "module_kobject.kobj", "module_kobject.mod", "module.mkobj.kobj"} {
		if offs[p], err = k.Off(p); err != nil {
			return nil, err
		}
	}
	var out []Module
	err = k.walkList(kset+offs["kset.list"], "module_kset", MaxModules, func(e uint64) error {
		mk := e - offs["kobject.entry"] - offs["module_kobject.kobj"]
		mod, err := k.U64(mk + offs["module_kobject.mod"])
		if err != nil || mod == 0 {
			return nil
		}
		// The kobject must be the module's own: mod->mkobj.kobj == this one.
		if mod+offs["module.mkobj.kobj"] != mk+offs["module_kobject.kobj"] {
			return nil
		}
		if m, err := k.ReadModule(mod); err == nil {
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// HiddenModules lists modules with a sysfs kobject that the module list
// does not reach (checked twice: modules may be loading or unloading).
func (k *Kernel) HiddenModules() ([]Module, error) {
	hidden, err := confirmed(func() (map[uint64]Module, error) {
		list, err := k.Modules()
		if err != nil {
			return nil, fmt.Errorf("module list: %w", err)
		}
		sysfs, err := k.SysfsModules()
		if err != nil {
			return nil, fmt.Errorf("module kset: %w", err)
		}
		in := map[uint64]bool{}
		for _, m := range list {
			in[m.Module] = true
		}
		missing := map[uint64]Module{}
		for _, m := range sysfs {
			if !in[m.Module] {
				missing[m.Module] = m
			}
		}
		return missing, nil
	})
	out := slices.Collect(maps.Values(hidden))
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}
