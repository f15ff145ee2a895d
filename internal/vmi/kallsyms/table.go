package kallsyms

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// Symbol is one kallsyms entry.
type Symbol struct {
	Name string
	Addr uint64 // link-time virtual address (or per-CPU offset for type A)
	Type byte   // nm-style type letter: T/t text, D/d data, R/r rodata, B/b bss, A absolute...
}

// Global reports whether the symbol is external (upper-case type letter).
func (s Symbol) Global() bool { return s.Type >= 'A' && s.Type <= 'Z' }

// Table is a decoded kallsyms table, ordered by address like the kernel's.
// It is immutable after construction and safe for concurrent use.
type Table struct {
	syms   []Symbol // sorted by Addr; equal addresses keep kernel order
	names  *nameIndex
	layout Layout
}

// nameIndex maps each name to its preferred symbol. It is built on the first
// Lookup: a table loaded from a cache may only ever be used for Nearest, and
// building the map is a large part of the load time.
type nameIndex struct {
	once sync.Once
	m    map[string]int
}

// newTable wraps symbols that are sorted by address (checked by the callers:
// kallsyms data is sorted, and the compact encoding is delta-coded).
func newTable(syms []Symbol, layout Layout) *Table {
	return &Table{syms: syms, names: &nameIndex{}, layout: layout}
}

func (t *Table) index() map[string]int {
	if t.names == nil { // the zero Table
		return nil
	}
	t.names.once.Do(func() {
		m := make(map[string]int, len(t.syms))
		for i, s := range t.syms {
			j, seen := m[s.Name]
			// Several static symbols can share a name; prefer the global
			// one, else the first (lowest address), which is what a
			// reader of /proc/kallsyms usually means.
			if !seen || (s.Global() && !t.syms[j].Global()) {
				m[s.Name] = i
			}
		}
		t.names.m = m
	})
	return t.names.m
}

// Len returns the number of symbols.
func (t *Table) Len() int { return len(t.syms) }

// At returns the i-th symbol in address order.
func (t *Table) At(i int) Symbol { return t.syms[i] }

// Layout says where the tables were found; zero for a table loaded from JSON.
func (t *Table) Layout() Layout { return t.layout }

// Lookup returns the address and type of name. When several symbols share
// the name, a global one wins over local ones, then the lowest address.
func (t *Table) Lookup(name string) (addr uint64, typ byte, ok bool) {
	i, ok := t.index()[name]
	if !ok {
		return 0, 0, false
	}
	return t.syms[i].Addr, t.syms[i].Type, true
}

// LookupAll returns every symbol called name, in address order.
func (t *Table) LookupAll(name string) []Symbol {
	var out []Symbol
	for _, s := range t.syms {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Nearest names the symbol containing addr: the last symbol at or below it,
// and the offset into it. Among aliases (symbols at the same address) the
// first in kernel order wins, as in the kernel's own symbol printing, which
// sorts globals and names with fewer leading underscores first.
//
// The table has no sizes, so a symbol is taken to extend to the next higher
// address; addr below the first symbol, or above the last one, is not
// contained in anything and ok is false. Callers deciding whether a pointer is
// legitimate (say, a syscall handler) must still check the address range,
// for example against _stext/_etext: a large offset means "in the gap after".
func (t *Table) Nearest(addr uint64) (name string, off uint64, ok bool) {
	n := len(t.syms)
	// First index whose address is > addr; the candidate is the one before.
	i := sort.Search(n, func(i int) bool { return t.syms[i].Addr > addr })
	if i == 0 {
		return "", 0, false
	}
	if i == n && t.syms[n-1].Addr != addr {
		return "", 0, false
	}
	a := t.syms[i-1].Addr
	first := sort.Search(i, func(j int) bool { return t.syms[j].Addr >= a })
	s := t.syms[first]
	// Several names can share an address (__x64_sys_getpid and its local
	// __do_sys_getpid): a global name is the one people know.
	for j := first; j < i && j-first < 16; j++ {
		if t.syms[j].Global() {
			s = t.syms[j]
			break
		}
	}
	return s.Name, addr - s.Addr, true
}

// New builds a table from symbols in any order (they are sorted by address,
// keeping the given order among equal addresses). Names and types are checked
// as strictly as when parsing an image.
func New(syms []Symbol) (*Table, error) {
	if len(syms) > MaxSymbols {
		return nil, fmt.Errorf("kallsyms: %d symbols, more than %d", len(syms), MaxSymbols)
	}
	for i, s := range syms {
		if err := checkName(s.Name, s.Type); err != nil {
			return nil, fmt.Errorf("kallsyms: symbol %d: %w", i, err)
		}
	}
	sorted := slices.Clone(syms)
	slices.SortStableFunc(sorted, func(a, b Symbol) int { return cmp.Compare(a.Addr, b.Addr) })
	return newTable(sorted, Layout{}), nil
}

// Next returns the first symbol at an address above addr: where the
// symbol containing addr ends, since kallsyms records no sizes.
func (t *Table) Next(addr uint64) (Symbol, bool) {
	i := sort.Search(len(t.syms), func(i int) bool { return t.syms[i].Addr > addr })
	if i == len(t.syms) {
		return Symbol{}, false
	}
	return t.syms[i], true
}

// NamesAt lists every symbol at exactly addr (at most 16), in table order.
func (t *Table) NamesAt(addr uint64) []string {
	i := sort.Search(len(t.syms), func(i int) bool { return t.syms[i].Addr >= addr })
	var out []string
	for j := i; j < len(t.syms) && t.syms[j].Addr == addr && len(out) < 16; j++ {
		out = append(out, t.syms[j].Name)
	}
	return out
}
