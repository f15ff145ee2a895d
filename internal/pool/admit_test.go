package pool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// claim is an 8-vCPU, 8 GiB VM with reservations.
func claim(name, pool string, cpuRes, memRes int64) VMClaim {
	c := VMClaim{Name: name, Pool: pool, VCPUs: 8, MemoryMiB: 8192}
	c.Resources.CPU.ReservationMilli = cpuRes
	c.Resources.Memory.ReservationMiB = memRes
	return c
}

func mustTree(t testing.TB, c Capacity, pools ...Pool) *Tree {
	t.Helper()
	tree, err := NewTree(c, pools)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestAdmit(t *testing.T) {
	// gold 4000m: db 2000m and silver 1500m leave 500m.
	gold := []Pool{pl("gold", "", 4000, 8192), pl("silver", "gold", 1500, 0)}
	goldVMs := []VMClaim{claim("db", "gold", 2000, 0)}
	tests := []struct {
		name    string
		pools   []Pool
		running []VMClaim
		vm      VMClaim
		kind    error
		msg     string
	}{
		{"fits", gold, goldVMs, claim("web", "gold", 500, 1024), nil, ""},
		{"no reservation always fits", gold, goldVMs, claim("web", "gold", 0, 0), nil, ""},
		{"root pool", nil, nil, claim("web", "", 4000, 4096), nil, ""},
		{"cpu short", gold, goldVMs, claim("web", "gold", 2000, 0), ErrNoRoom,
			`pool "gold": cannot reserve 2000m CPU for vm "web" (resources.cpu.reservation_millicores): 1500m short: 500m unreserved (reservation 4000m; held by vm db 2000m, pool silver 1500m)`},
		{"memory short by one MiB", gold, []VMClaim{claim("db", "gold", 0, 4096)}, claim("web", "gold", 0, 4097), ErrNoRoom,
			`pool "gold": cannot reserve 4097 MiB memory for vm "web" (resources.memory.reservation_mib): 1 MiB short: 4096 MiB unreserved (reservation 8192 MiB; held by vm db 4096 MiB)`},
		{"not expandable: the host's room does not help", []Pool{pl("gold", "", 1000, 0)}, nil, claim("web", "gold", 1001, 0), ErrNoRoom,
			`pool "gold": cannot reserve 1001m CPU for vm "web" (resources.cpu.reservation_millicores): 1m short: 1000m unreserved (reservation 1000m; held by nothing)`},
		{"expandable borrows from the host", []Pool{expandable(pl("gold", "", 1000, 0))}, nil, claim("web", "gold", 3000, 0), nil, ""},
		{"expandable, host full", []Pool{expandable(pl("gold", "", 1000, 0)), pl("other", "", 6000, 0)}, nil, claim("web", "gold", 2001, 0), ErrNoRoom,
			`pool "gold": cannot reserve 2001m CPU for vm "web" (resources.cpu.reservation_millicores): 1m short: 1000m unreserved (expandable, reservation 1000m; held by nothing) + 1000m in pool "host" (capacity 8000m; held by pool other 6000m, pool gold 1000m)`},
		{"expandable already borrowing", []Pool{expandable(pl("gold", "", 1000, 0))}, []VMClaim{claim("a", "gold", 3000, 0)}, claim("web", "gold", 5001, 0), ErrNoRoom,
			`1m short: 0m unreserved (expandable, reservation 1000m; held by vm a 3000m) + 5000m in pool "host" (capacity 8000m; held by pool gold 3000m)`},
		{"expandable within its limit", []Pool{withLimits(expandable(pl("gold", "", 1000, 0)), 2500, 0)}, nil, claim("web", "gold", 2500, 0), nil, ""},
		{"expandable above its limit", []Pool{withLimits(expandable(pl("gold", "", 1000, 0)), 2500, 0)}, []VMClaim{claim("a", "gold", 500, 0)}, claim("web", "gold", 2001, 0), ErrNoRoom,
			`pool "gold": cannot reserve 2001m CPU for vm "web" (resources.cpu.reservation_millicores): 1m short: 500m unreserved (expandable, reservation 1000m; held by vm a 500m) + 7000m in pool "host" (capacity 8000m; held by pool gold 1000m); the limit 2500m of pool "gold" leaves 2000m`},
		{"limit on a fixed pool", []Pool{withLimits(pl("gold", "", 1000, 0), 1000, 0)}, nil, claim("web", "gold", 1000, 0), nil, ""},
		{"nested expandable chain", []Pool{expandable(pl("a", "", 1000, 0)), expandable(pl("b", "a", 500, 0)), pl("c", "", 2000, 0)}, nil, claim("web", "b", 6000, 0), nil, ""},
		{"nested expandable chain, one over", []Pool{expandable(pl("a", "", 1000, 0)), expandable(pl("b", "a", 500, 0)), pl("c", "", 2000, 0)}, nil, claim("web", "b", 6001, 0), ErrNoRoom,
			`pool "b": cannot reserve 6001m CPU for vm "web" (resources.cpu.reservation_millicores): 1m short: 500m unreserved (expandable, reservation 500m; held by nothing) + 500m in pool "a" (expandable, reservation 1000m; held by pool b 500m) + 5000m in pool "host" (capacity 8000m; held by pool c 2000m, pool a 1000m)`},
		{"nested, fixed middle", []Pool{pl("a", "", 1000, 0), expandable(pl("b", "a", 500, 0))}, nil, claim("web", "b", 1001, 0), ErrNoRoom,
			`1m short: 500m unreserved (expandable, reservation 500m; held by nothing) + 500m in pool "a" (reservation 1000m; held by pool b 500m)`},
		{"unknown pool", gold, nil, claim("web", "lead", 0, 0), ErrNotFound, `vm "web": pool "lead" does not exist`},
		{"already running", gold, goldVMs, claim("db", "gold", 0, 0), ErrInvalid, `vm "db" is already running`},
		{"running vm in unknown pool", gold, []VMClaim{claim("old", "gone", 0, 0)}, claim("web", "gold", 0, 0), ErrNotFound, `vm "old": pool "gone" does not exist`},
		{"running vm with absurd reservation", gold, []VMClaim{claim("old", "gold", -5, 0)}, claim("web", "gold", 0, 0), ErrInvalid, `vm "old": resources.cpu.reservation_millicores -5 out of range`},
		{"reservation above the vm's size", gold, nil, claim("web", "gold", 8001, 0), ErrInvalid, `vm "web": resources.cpu.reservation_millicores: reservation 8001m is above the limit 8000m`},
		{"negative reservation", gold, nil, claim("web", "gold", 0, -1), ErrInvalid, `resources.memory.reservation_mib: -1 is out of range`},
		{"bad vm name", gold, nil, claim("Web", "gold", 0, 0), ErrInvalid, `vm "Web": name:`},
		{"bad vcpus", gold, nil, VMClaim{Name: "web", VCPUs: 0, MemoryMiB: 1024}, ErrInvalid, `vm "web": vcpus: 0 out of range`},
		{"bad memory", gold, nil, VMClaim{Name: "web", VCPUs: 1, MemoryMiB: 1 << 40}, ErrInvalid, `vm "web": memory_mib:`},
		{"bad overhead", gold, nil, VMClaim{Name: "web", VCPUs: 1, MemoryMiB: 1024, OverheadMiB: -1}, ErrInvalid, `memory overhead -1 MiB`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := mustTree(t, host, tt.pools...)
			err := Admit(tree, tt.running, tt.vm)
			wantErr(t, err, tt.kind, tt.msg)
			if err == nil {
				// What Admit accepts, the tree holds.
				if err := Check(tree, append(append([]VMClaim(nil), tt.running...), tt.vm)); err != nil {
					t.Errorf("admitted, but Check: %v", err)
				}
			}
		})
	}
}

func TestAdmitErrorFields(t *testing.T) {
	tree := mustTree(t, host, pl("gold", "", 4000, 0))
	err := Admit(tree, []VMClaim{claim("db", "gold", 3000, 0)}, claim("web", "gold", 1500, 0))
	var pe *Error
	if !errors.As(err, &pe) || pe.Pool != "gold" || pe.Field != "resources.cpu.reservation_millicores" || pe.Shortfall != 500 {
		t.Fatalf("%#v", err)
	}
}

func TestAdmitHolderListIsBounded(t *testing.T) {
	tree := mustTree(t, host, pl("gold", "", 4000, 0))
	var running []VMClaim
	for i := range 100 {
		running = append(running, claim(fmt.Sprintf("vm%02d", i), "gold", 40, 0))
	}
	err := Admit(tree, running, claim("web", "gold", 1, 0))
	wantErr(t, err, ErrNoRoom, "held by vm vm00 40m, vm vm01 40m, vm vm02 40m, vm vm03 40m, vm vm04 40m and 95 more 3800m)")
	if len(err.Error()) > 400 {
		t.Errorf("message of %d bytes", len(err.Error()))
	}
}

// TestMemoryNeverOvercommitted admits random VMs into a random mix of
// fixed and expandable pools and checks after every admission that no
// pool holds more than it may and the root no more than the capacity.
func TestMemoryNeverOvercommitted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tree := mustTree(t, host,
		pl("a", "", 0, 6000), expandable(pl("b", "", 0, 2000)), expandable(pl("c", "b", 0, 500)), pl("d", "c", 0, 300),
		withLimits(expandable(pl("e", "", 0, 1000)), 0, 3000))
	pools := []string{"", "a", "b", "c", "d", "e"}
	var running []VMClaim
	admitted, refused := 0, 0
	for i := range 2000 {
		c := claim(fmt.Sprintf("v%d", i), pools[rng.IntN(len(pools))], 0, rng.Int64N(1500))
		if err := Admit(tree, running, c); err != nil {
			if !errors.Is(err, ErrNoRoom) {
				t.Fatal(err)
			}
			refused++
			continue
		}
		admitted++
		running = append(running, c)
		if err := Check(tree, running); err != nil {
			t.Fatalf("after admitting %s: %v", c.Name, err)
		}
		var total int64
		for _, u := range mustUsages(t, tree, running) {
			if u.Pool == RootName {
				total = u.Memory.ReservedByPools + u.Memory.ReservedByVMs
			}
		}
		if total > host.MemoryMiB {
			t.Fatalf("root holds %d MiB of %d", total, host.MemoryMiB)
		}
		// Stop VMs now and then so that admission keeps being exercised.
		if len(running) > 0 && rng.IntN(2) == 0 {
			k := rng.IntN(len(running))
			running = append(running[:k], running[k+1:]...)
		}
	}
	if admitted < 100 || refused < 100 {
		t.Errorf("admitted %d, refused %d: the test does not exercise both", admitted, refused)
	}
}

func mustUsages(t *testing.T, tree *Tree, running []VMClaim) []Usage {
	t.Helper()
	us, err := Usages(tree, running)
	if err != nil {
		t.Fatal(err)
	}
	return us
}

func TestCheck(t *testing.T) {
	tree := mustTree(t, Capacity{CPUMilli: 4000, MemoryMiB: 4096})
	running := []VMClaim{claim("a", "", 0, 3000), claim("b", "", 0, 1000)}
	if err := Check(tree, running); err != nil {
		t.Fatal(err)
	}
	// The host came back with less memory.
	small := mustTree(t, Capacity{CPUMilli: 4000, MemoryMiB: 3500})
	wantErr(t, Check(small, running), ErrNoRoom, `pool "host": memory reservations held in it total 4000 MiB, 500 MiB above its capacity 3500 MiB (held by vm a 3000 MiB, vm b 1000 MiB)`)
}

func TestCheckChange(t *testing.T) {
	base := []Pool{pl("gold", "", 4000, 8192), pl("silver", "", 2000, 2048), pl("lead", "silver", 0, 0)}
	running := []VMClaim{claim("db", "gold", 3000, 4096), claim("web", "silver", 1000, 0)}
	members := []Member{{"db", "gold"}, {"web", "silver"}, {"idle", "lead"}}
	tests := []struct {
		name   string
		change Change
		kind   error
		msg    string
		check  func(t *testing.T, nt *Tree)
	}{
		{"raise a running reservation within room", Change{Kind: SetVM, VM: claim("db", "gold", 4000, 4096)}, nil, "", nil},
		{"raise a running reservation past room", Change{Kind: SetVM, VM: claim("db", "gold", 4001, 4096)}, ErrNoRoom, `pool "gold": cannot reserve 4001m CPU for vm "db" (resources.cpu.reservation_millicores): 1m short: 4000m unreserved (reservation 4000m; held by nothing)`, nil},
		{"raise memory past room", Change{Kind: SetVM, VM: claim("web", "silver", 1000, 2049)}, ErrNoRoom,
			`pool "silver": cannot reserve 2049 MiB memory for vm "web" (resources.memory.reservation_mib): 1 MiB short: 2048 MiB unreserved (reservation 2048 MiB; held by nothing)`, nil},
		{"raise past the vm's size", Change{Kind: SetVM, VM: claim("db", "gold", 8001, 0)}, ErrInvalid, "reservation 8001m is above the limit 8000m", nil},
		{"raise past the pool", Change{Kind: SetVM, VM: claim("web", "silver", 2001, 0)}, ErrNoRoom,
			`pool "silver": cannot reserve 2001m CPU for vm "web" (resources.cpu.reservation_millicores): 1m short: 2000m unreserved (reservation 2000m; held by nothing)`, nil},
		{"move a running vm to a pool with room", Change{Kind: SetVM, VM: claim("web", "gold", 1000, 0)}, nil, "", nil},
		{"move a running vm to a pool without room", Change{Kind: SetVM, VM: claim("db", "silver", 3000, 0)}, ErrNoRoom,
			`pool "silver": cannot reserve 3000m CPU for vm "db" moving from pool "gold" (resources.cpu.reservation_millicores): 2000m short: 1000m unreserved (reservation 2000m; held by vm web 1000m)`, nil},
		{"move a stopped vm anywhere", Change{Kind: SetVM, VM: claim("idle", "lead", 4000, 4096)}, nil, "", nil},
		{"move to a missing pool", Change{Kind: SetVM, VM: claim("web", "tin", 0, 0)}, ErrNotFound, `vm "web": pool "tin" does not exist`, nil},

		{"create", Change{Kind: CreatePool, Pool: pl("tin", "", 2000, 0)}, nil, "", func(t *testing.T, nt *Tree) {
			if _, ok := nt.Lookup("tin"); !ok {
				t.Error("tin missing")
			}
		}},
		{"create past the capacity", Change{Kind: CreatePool, Pool: pl("tin", "", 2001, 0)}, ErrNoRoom,
			`pool "host": CPU reservations held in it total 8001m, 1m above its capacity 8000m (held by pool gold 4000m, pool tin 2001m, pool silver 2000m)`, nil},
		{"create existing", Change{Kind: CreatePool, Pool: pl("gold", "", 0, 0)}, ErrInvalid, `pool "gold" already exists`, nil},
		{"create the root", Change{Kind: CreatePool, Pool: pl("host", "", 0, 0)}, ErrInvalid, `cannot be defined, changed or deleted`, nil},
		{"create under a missing parent", Change{Kind: CreatePool, Pool: pl("tin", "zinc", 0, 0)}, ErrInvalid, `pool "tin": parent "zinc" does not exist`, nil},
		{"create with limit below reservation", Change{Kind: CreatePool, Pool: withLimits(pl("tin", "", 100, 0), 50, 0)}, ErrInvalid, `cpu.limit 50m is below the reservation 100m`, nil},

		{"lower a reservation below its vms", Change{Kind: SetPool, Pool: pl("gold", "", 2999, 8192)}, ErrNoRoom,
			`pool "gold": CPU reservations held in it total 3000m, 1m above its reservation 2999m (held by vm db 3000m)`, nil},
		{"lower a reservation to what its vms hold", Change{Kind: SetPool, Pool: pl("gold", "", 3000, 4096)}, nil, "", nil},
		{"raise a reservation past the capacity", Change{Kind: SetPool, Pool: pl("silver", "", 4001, 2048)}, ErrNoRoom, `pool "host": CPU reservations held in it total 8001m`, nil},
		{"limit below the vms' reservations", Change{Kind: SetPool, Pool: withLimits(expandable(pl("gold", "", 0, 0)), 2000, 0)}, ErrNoRoom,
			`pool "gold": CPU reservations held in it total 3000m, 1000m above its limit 2000m (held by vm db 3000m)`, nil},
		{"make a pool expandable", Change{Kind: SetPool, Pool: expandable(pl("gold", "", 0, 0))}, nil, "", nil},
		{"reparent into a cycle", Change{Kind: SetPool, Pool: pl("silver", "lead", 2000, 2048)}, ErrInvalid, `parent cycle`, nil},
		{"reparent without room", Change{Kind: SetPool, Pool: pl("silver", "gold", 2000, 2048)}, ErrNoRoom,
			`pool "gold": CPU reservations held in it total 5000m, 1000m above its reservation 4000m (held by vm db 3000m, pool silver 2000m)`, nil},
		{"reparent above the new parent", Change{Kind: SetPool, Pool: pl("gold", "silver", 4000, 0)}, ErrNoRoom,
			`pool "gold": cpu.reservation 4000m is above the reservation 2000m of its parent "silver", which is not expandable (2000m short)`, nil},
		{"reparent", Change{Kind: SetPool, Pool: pl("lead", "", 0, 0)}, nil, "", func(t *testing.T, nt *Tree) {
			if p, _ := nt.Path("lead"); p != "pool.lead" {
				t.Errorf("path %q", p)
			}
		}},
		{"set the root", Change{Kind: SetPool, Pool: pl("host", "", 0, 0)}, ErrInvalid, `the root pool`, nil},
		{"set a missing pool", Change{Kind: SetPool, Pool: pl("tin", "", 0, 0)}, ErrNotFound, `pool "tin" does not exist`, nil},

		{"delete a pool with a stopped vm", Change{Kind: DeletePool, Name: "lead", Members: members}, ErrInUse, `pool "lead" holds 1 vms (idle): delete them or move them to another pool first`, nil},
		{"delete a pool with a running vm not in members", Change{Kind: DeletePool, Name: "gold"}, ErrInUse, `pool "gold" holds 1 vms (db)`, nil},
		{"delete a pool with pools", Change{Kind: DeletePool, Name: "silver"}, ErrInUse, `pool "silver" holds 1 pools (lead)`, nil},
		{"delete the root", Change{Kind: DeletePool, Name: "host"}, ErrInvalid, `the root pool`, nil},
		{"delete the root by empty name", Change{Kind: DeletePool, Name: ""}, ErrInvalid, `the root pool`, nil},
		{"delete a missing pool", Change{Kind: DeletePool, Name: "tin"}, ErrNotFound, `pool "tin" does not exist`, nil},
		{"delete an empty pool", Change{Kind: DeletePool, Name: "lead"}, nil, "", func(t *testing.T, nt *Tree) {
			if _, ok := nt.Lookup("lead"); ok || len(nt.Pools()) != 2 {
				t.Errorf("pools %v", nt.Pools())
			}
		}},
		{"unknown kind", Change{}, ErrInvalid, "unknown change kind 0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := mustTree(t, host, base...)
			before := tree.Pools()
			nt, err := CheckChange(tree, running, tt.change)
			wantErr(t, err, tt.kind, tt.msg)
			if err != nil && nt != nil {
				t.Error("a refused change returned a tree")
			}
			if !reflect.DeepEqual(tree.Pools(), before) {
				t.Error("CheckChange modified the tree it was given")
			}
			if tt.check != nil {
				tt.check(t, nt)
			}
		})
	}
}

func TestClaimFromSpec(t *testing.T) {
	s := &vm.Spec{Name: "web", VCPUs: 2, MemoryMiB: 1024, Pool: "gold", Resources: &vm.Resources{CPU: vm.CPUResources{ReservationMilli: 500}}}
	c := ClaimFromSpec(s, 64)
	if c.Name != "web" || c.Pool != "gold" || c.VCPUs != 2 || c.MemoryMiB != 1024 || c.OverheadMiB != 64 || c.Resources.CPU.ReservationMilli != 500 {
		t.Errorf("%+v", c)
	}
	if c := ClaimFromSpec(&vm.Spec{Name: "x", VCPUs: 1, MemoryMiB: 64}, 0); c.Resources != (vm.Resources{}) {
		t.Errorf("%+v", c)
	}
}

func TestUsagesAndDescribe(t *testing.T) {
	tree := mustTree(t, host, pl("gold", "", 4000, 8192), expandable(pl("silver", "gold", 1000, 0)), withLimits(pl("tin", "", 0, 0), 3000, 0))
	running := []VMClaim{claim("db", "gold", 1000, 2048), claim("web", "silver", 1500, 1024)}
	us := mustUsages(t, tree, running)
	got := map[string]Account{}
	for _, u := range us {
		got[u.Pool] = u.CPU
	}
	want := map[string]Account{
		"host":   {Reservation: 8000, Limit: 8000, ReservedByPools: 4000, Unreserved: 4000, Available: 4000},
		"gold":   {Reservation: 4000, ReservedByPools: 1500, ReservedByVMs: 1000, Unreserved: 1500, Available: 1500},
		"silver": {Reservation: 1000, ReservedByVMs: 1500, Borrowed: 500, Available: 1500},
		"tin":    {Limit: 3000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if us[0].Pool != RootName || us[1].Pool != "gold" || us[2].Pool != "silver" || us[3].Pool != "tin" {
		t.Errorf("order %+v", us)
	}
	d, err := Describe(tree, running, "gold")
	if err != nil {
		t.Fatal(err)
	}
	wantHolders := []Holder{{"pool", "silver", 1500}, {"vm", "db", 1000}}
	if !reflect.DeepEqual(d.CPUHolders, wantHolders) {
		t.Errorf("cpu holders %+v", d.CPUHolders)
	}
	text := d.String()
	for _, part := range []string{
		"pool gold (parent host)\n",
		"CPU: reservation 4000m, limit unlimited, reserved by pools 1500m, by vms 1000m, borrowed 0m, unreserved 1500m, available 1500m\n",
		"  pool silver 1500m\n  vm db 1000m\n",
		"memory: reservation 8192 MiB, limit unlimited, reserved by pools 1024 MiB, by vms 2048 MiB",
	} {
		if !strings.Contains(text, part) {
			t.Errorf("Describe text lacks %q:\n%s", part, text)
		}
	}
	if _, err := Describe(tree, running, "lead"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Describe(missing): %v", err)
	}
	if _, err := Usages(tree, []VMClaim{claim("x", "lead", 0, 0)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Usages(unknown pool): %v", err)
	}
}
