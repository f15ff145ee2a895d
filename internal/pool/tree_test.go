package pool

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// host is the capacity of most tests: 8 CPUs, 16 GiB.
var host = Capacity{CPUMilli: 8000, MemoryMiB: 16384}

// pl is a pool with CPU and memory reservations.
func pl(name, parent string, cpuRes, memRes int64) Pool {
	return Pool{Name: name, Parent: parent, CPU: Alloc{Reservation: cpuRes}, Memory: Alloc{Reservation: memRes}}
}

func expandable(p Pool) Pool { p.Expandable = true; return p }

func withLimits(p Pool, cpuLim, memLim int64) Pool {
	p.CPU.Limit, p.Memory.Limit = cpuLim, memLim
	return p
}

// wantErr checks err against a wanted kind and message part ("" and nil:
// no error).
func wantErr(t *testing.T, err error, kind error, part string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %v containing %q", kind, part)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Errorf("error %q is not a *pool.Error", err)
	}
	if !strings.Contains(err.Error(), part) {
		t.Errorf("error %q does not contain %q", err, part)
	}
}

func TestNewTree(t *testing.T) {
	deep := []Pool{pl("d1", "", 0, 0)}
	for i := 2; i <= MaxDepth+1; i++ {
		deep = append(deep, pl(fmt.Sprintf("d%d", i), fmt.Sprintf("d%d", i-1), 0, 0))
	}
	many := make([]Pool, MaxPools+1)
	for i := range many {
		many[i] = pl(fmt.Sprintf("p%d", i), "", 0, 0)
	}
	tests := []struct {
		name  string
		cap   Capacity
		pools []Pool
		kind  error
		msg   string
	}{
		{"empty", host, nil, nil, ""},
		{"nested", host, []Pool{pl("gold", "", 4000, 8192), pl("silver", "gold", 1000, 1024), pl("bronze", "silver", 500, 512)}, nil, ""},
		{"parent host spelled out", host, []Pool{pl("gold", "host", 4000, 0)}, nil, ""},
		{"order does not matter", host, []Pool{pl("c", "b", 0, 0), pl("b", "a", 0, 0), pl("a", "", 0, 0)}, nil, ""},
		{"exactly the capacity", host, []Pool{pl("a", "", 4000, 8192), pl("b", "", 4000, 8192)}, nil, ""},
		{"max depth", host, deep[:MaxDepth], nil, ""},

		{"bad name", host, []Pool{pl("Gold", "", 0, 0)}, ErrInvalid, `pool: name: "Gold" must be lower-case`},
		{"dotted name", host, []Pool{pl("a.b", "", 0, 0)}, ErrInvalid, `"a.b" must be lower-case`},
		{"empty name", host, []Pool{pl("", "", 0, 0)}, ErrInvalid, "name: must not be empty"},
		{"bad parent name", host, []Pool{pl("a", "../x", 0, 0)}, ErrInvalid, `pool "a": parent: "../x"`},
		{"root redefined", host, []Pool{pl("host", "", 0, 0)}, ErrInvalid, `pool "host": the root pool is the host's capacity and cannot be defined`},
		{"defined twice", host, []Pool{pl("a", "", 0, 0), pl("a", "", 0, 0)}, ErrInvalid, `pool "a": defined twice`},
		{"dangling parent", host, []Pool{pl("a", "nowhere", 0, 0)}, ErrInvalid, `pool "a": parent "nowhere" does not exist`},
		{"self cycle", host, []Pool{pl("a", "a", 0, 0)}, ErrInvalid, `pool "a": parent cycle a -> a`},
		{"cycle", host, []Pool{pl("x", "", 0, 0), pl("a", "c", 0, 0), pl("b", "a", 0, 0), pl("c", "b", 0, 0)}, ErrInvalid, `parent cycle a -> c -> b -> a`},
		{"cycle below a tail", host, []Pool{pl("t", "a", 0, 0), pl("a", "b", 0, 0), pl("b", "a", 0, 0)}, ErrInvalid, `parent cycle`},
		{"too deep", host, deep, ErrInvalid, fmt.Sprintf(`pool "d%d": nested %d pools deep, at most %d`, MaxDepth+1, MaxDepth+1, MaxDepth)},
		{"too many", host, many, ErrInvalid, fmt.Sprintf("%d pools: at most %d", MaxPools+1, MaxPools)},

		{"negative reservation", host, []Pool{pl("a", "", -1, 0)}, ErrInvalid, `pool "a": cpu.reservation -1m out of range 0..1048576m`},
		{"absurd reservation", host, []Pool{pl("a", "", vm.MaxMillicores+1, 0)}, ErrInvalid, `cpu.reservation 1048577m out of range`},
		{"absurd memory", host, []Pool{pl("a", "", 0, vm.MaxMiB+1)}, ErrInvalid, `memory.reservation 16777217 MiB out of range 0..16777216 MiB`},
		{"negative limit", host, []Pool{withLimits(pl("a", "", 0, 0), 0, -5)}, ErrInvalid, `memory.limit -5 MiB out of range`},
		{"cpu limit below reservation", host, []Pool{withLimits(pl("a", "", 2000, 0), 1000, 0)}, ErrInvalid, `pool "a": cpu.limit 1000m is below the reservation 2000m`},
		{"memory limit below reservation", host, []Pool{withLimits(pl("a", "", 0, 2048), 0, 1024)}, ErrInvalid, `pool "a": memory.limit 1024 MiB is below the reservation 2048 MiB`},
		{"bad shares", host, []Pool{{Name: "a", CPU: Alloc{Shares: "medium"}}}, ErrInvalid, `pool "a": cpu.shares: shares "medium"`},
		{"zero shares", host, []Pool{{Name: "a", Memory: Alloc{Shares: "0"}}}, ErrInvalid, `memory.shares: shares "0"`},
		{"absurd shares", host, []Pool{{Name: "a", Disk: DiskAlloc{Shares: "99999999"}}}, ErrInvalid, `disk.shares`},
		{"negative disk limit", host, []Pool{{Name: "a", Disk: DiskAlloc{ReadIOPS: -1}}}, ErrInvalid, `pool "a": disk.read_iops -1 out of range`},
		{"absurd disk limit", host, []Pool{{Name: "a", Disk: DiskAlloc{WriteBPS: vm.MaxBPS + 1}}}, ErrInvalid, `disk.write_bytes_per_sec`},
		{"zero capacity", Capacity{0, 1024}, nil, ErrInvalid, `pool "host": capacity 0m out of range`},
		{"absurd capacity", Capacity{1000, vm.MaxMiB + 1}, nil, ErrInvalid, `capacity 16777217 MiB out of range`},

		{"child above parent, not expandable", host, []Pool{pl("gold", "", 4000, 0), pl("silver", "gold", 5000, 0)}, ErrNoRoom,
			`pool "silver": cpu.reservation 5000m is above the reservation 4000m of its parent "gold", which is not expandable (1000m short)`},
		{"child above capacity", host, []Pool{pl("gold", "", 0, 20000)}, ErrNoRoom,
			`pool "gold": memory.reservation 20000 MiB is above the capacity 16384 MiB of its parent "host", which is not expandable (3616 MiB short)`},
		{"child above parent, expandable, host covers", host, []Pool{expandable(pl("gold", "", 4000, 0)), pl("silver", "gold", 5000, 0)}, nil, ""},
		{"child above parent's limit", host, []Pool{withLimits(expandable(pl("gold", "", 1000, 0)), 3000, 0), pl("silver", "gold", 3500, 0)}, ErrNoRoom,
			`pool "silver": cpu.reservation 3500m is above the limit 3000m of its parent "gold" (500m short)`},
		{"children sum above parent", host, []Pool{pl("gold", "", 4000, 0), pl("a", "gold", 3000, 0), pl("b", "gold", 2000, 0)}, ErrNoRoom,
			`pool "gold": CPU reservations held in it total 5000m, 1000m above its reservation 4000m (held by pool a 3000m, pool b 2000m)`},
		{"children sum above capacity", host, []Pool{pl("a", "", 5000, 0), pl("b", "", 3001, 0)}, ErrNoRoom,
			`pool "host": CPU reservations held in it total 8001m, 1m above its capacity 8000m (held by pool a 5000m, pool b 3001m)`},
		{"expandable, ancestors cannot cover", host, []Pool{pl("other", "", 5000, 0), expandable(pl("gold", "", 2000, 0)), pl("a", "gold", 4000, 0)}, ErrNoRoom,
			`pool "host": CPU reservations held in it total 9000m, 1000m above its capacity 8000m (held by pool other 5000m, pool gold 4000m)`},
		{"expandable chain borrows from the root", host, []Pool{expandable(pl("a", "", 1000, 0)), expandable(pl("b", "a", 0, 0)), pl("c", "b", 7000, 0)}, nil, ""},
		{"expandable chain stops at a fixed pool", host, []Pool{pl("a", "", 1000, 0), expandable(pl("b", "a", 0, 0)), pl("c", "b", 2000, 0)}, ErrNoRoom,
			`pool "a": CPU reservations held in it total 2000m, 1000m above its reservation 1000m (held by pool b 2000m)`},
		{"expandable held above its limit", host, []Pool{withLimits(expandable(pl("gold", "", 1000, 0)), 3000, 0), pl("a", "gold", 2000, 0), pl("b", "gold", 2000, 0)}, ErrNoRoom,
			`pool "gold": CPU reservations held in it total 4000m, 1000m above its limit 3000m (held by pool a 2000m, pool b 2000m)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree, err := NewTree(tt.cap, tt.pools)
			wantErr(t, err, tt.kind, tt.msg)
			if err == nil && len(tree.Pools()) != len(tt.pools) {
				t.Errorf("tree has %d pools, want %d", len(tree.Pools()), len(tt.pools))
			}
		})
	}
}

func TestNewTreeErrorFields(t *testing.T) {
	_, err := NewTree(host, []Pool{pl("gold", "", 4000, 0), pl("a", "gold", 3000, 0), pl("b", "gold", 2000, 0)})
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("%v", err)
	}
	if pe.Pool != "gold" || pe.Field != "cpu.reservation" || pe.Shortfall != 1000 {
		t.Errorf("got pool %q field %q shortfall %d", pe.Pool, pe.Field, pe.Shortfall)
	}
}

func TestTreeAccessors(t *testing.T) {
	tree, err := NewTree(host, []Pool{pl("q", "p", 0, 0), pl("p", "", 1000, 0), pl("b", "", 0, 0), pl("r", "p", 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, p := range tree.Pools() {
		order = append(order, p.Parent+">"+p.Name)
	}
	if got := strings.Join(order, " "); got != "host>b host>p p>q p>r" {
		t.Errorf("order %s", got)
	}
	paths := map[string]string{"": "", "host": "", "p": "pool.p", "q": "pool.p/pool.q", "b": "pool.b"}
	for name, want := range paths {
		if got, ok := tree.Path(name); !ok || got != want {
			t.Errorf("Path(%q) = %q, %v, want %q", name, got, ok, want)
		}
	}
	if _, ok := tree.Path("zz"); ok {
		t.Error("Path of a missing pool")
	}
	for _, c := range []struct{ pool, vm, want string }{{"", "web", "web"}, {"q", "web", "pool.p/pool.q/web"}} {
		if got, _ := tree.VMPath(c.pool, c.vm); got != c.want {
			t.Errorf("VMPath(%q, %q) = %q, want %q", c.pool, c.vm, got, c.want)
		}
	}
	if got := strings.Join(tree.Children("p"), ","); got != "q,r" {
		t.Errorf("Children(p) = %s", got)
	}
	if got := strings.Join(tree.Children(""), ","); got != "b,p" {
		t.Errorf("Children(root) = %s", got)
	}
	root, ok := tree.Lookup("")
	if !ok || root.Name != RootName || root.CPU.Reservation != 8000 || root.Memory.Limit != 16384 {
		t.Errorf("Lookup(root) = %+v", root)
	}
	if p, ok := tree.Lookup("q"); !ok || p.Parent != "p" {
		t.Errorf("Lookup(q) = %+v", p)
	}
	if tree.Capacity() != host {
		t.Error("capacity")
	}
}

func TestNestingShortfall(t *testing.T) {
	_, err := NewTree(host, []Pool{pl("gold", "", 0, 1000), pl("silver", "gold", 0, 1500)})
	var pe *Error
	if !errors.As(err, &pe) || pe.Pool != "silver" || pe.Field != "memory.reservation" || pe.Shortfall != 500 {
		t.Fatalf("%#v", err)
	}
}
