package poolsvc

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-project/bulwark/internal/pool"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// fakeVMs stands in for the manager's VM list.
type fakeVMs struct {
	mu  sync.Mutex
	vms []*vm.VM
}

func (f *fakeVMs) List(context.Context) ([]*vm.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*vm.VM(nil), f.vms...), nil
}

func (f *fakeVMs) add(name, p string, st vm.State, cpuRes int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vms = append(f.vms, &vm.VM{Spec: vm.Spec{Name: name, VCPUs: 2, MemoryMiB: 256, Pool: p,
		Resources: &vm.Resources{CPU: vm.CPUResources{ReservationMilli: cpuRes}}}, State: st})
}

func newService(t *testing.T, vms *fakeVMs) (*Service, *store.Store) {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(t.Context(), st, vms, pool.Capacity{CPUMilli: 4000, MemoryMiB: 8192}, 256, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func TestPoolsPersistAndAdmit(t *testing.T) {
	vms := &fakeVMs{}
	s, st := newService(t, vms)
	ctx := t.Context()
	gold := pool.Pool{Name: "gold", CPU: pool.Alloc{Reservation: 2000}, Memory: pool.Alloc{Reservation: 1024}}
	if err := s.Create(ctx, gold); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, gold); err == nil {
		t.Fatal("a second pool gold was created")
	}
	if err := s.Create(ctx, pool.Pool{Name: "huge", CPU: pool.Alloc{Reservation: 3000}}); !errors.Is(err, pool.ErrNoRoom) {
		t.Fatalf("a pool beyond the host's capacity: %v", err)
	}
	if err := s.Create(ctx, pool.Pool{Name: "orphan", Parent: "nope"}); err == nil {
		t.Fatal("a pool with a dangling parent was created")
	}

	// Reopened from the store: the same tree.
	s2, err := New(ctx, st, vms, pool.Capacity{CPUMilli: 4000, MemoryMiB: 8192}, 256, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := s2.Tree().Lookup("gold"); !ok || p.CPU.Reservation != 2000 {
		t.Fatalf("after reopening: %+v %t", p, ok)
	}

	// Admission: db holds 1500m of gold's 2000m; web asking 1000m is
	// refused with the pool, the shortfall and the holder named.
	vms.add("db", "gold", vm.Running, 1500)
	vms.add("web", "gold", vm.Stopped, 1000)
	web := vms.vms[1].Spec
	_, _, err = s.Admit(ctx, web)
	if !errors.Is(err, pool.ErrNoRoom) || !strings.Contains(err.Error(), "gold") || !strings.Contains(err.Error(), "db") {
		t.Fatalf("admission beyond the pool: %v", err)
	}
	t.Logf("refused: %v", err)
	web.Resources.CPU.ReservationMilli = 500
	pl, release, err := s.Admit(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if pl.VM.Path != "pool.gold/web" || pl.VM.CPU.MaxMilli != 2000 {
		t.Fatalf("placement %+v", pl.VM)
	}
	// While web starts, its 500m count: a third VM cannot take them.
	vms.add("x", "gold", vm.Stopped, 100)
	if _, _, err := s.Admit(ctx, vms.vms[2].Spec); !errors.Is(err, pool.ErrNoRoom) {
		t.Fatalf("a pending start's reservation was given away: %v", err)
	}
	release()
	if _, rel, err := s.Admit(ctx, vms.vms[2].Spec); err != nil {
		t.Fatalf("after release: %v", err)
	} else {
		rel()
	}

	// A pool holding VMs is not deleted; an empty one is.
	if err := s.Delete(ctx, "gold"); !errors.Is(err, pool.ErrInUse) {
		t.Fatalf("deleting a pool with VMs: %v", err)
	}
	if err := s.Create(ctx, pool.Pool{Name: "empty"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	// Lowering gold's reservation below what db holds is refused.
	low := gold
	low.CPU.Reservation = 1000
	if err := s.Update(ctx, low); !errors.Is(err, pool.ErrNoRoom) {
		t.Fatalf("lowering below the running VMs: %v", err)
	}
	st0, err := s.Get(ctx, "gold")
	if err != nil {
		t.Fatal(err)
	}
	if st0.CPU.ReservedByVMs != 1500 || len(st0.VMs) != 3 {
		t.Fatalf("gold: %+v", st0)
	}
	inh := s.Inherit(vms.vms)
	if got := inh["/vms/db"]; len(got) != 1 || got[0] != "/pools/gold" {
		t.Fatalf("inheritance: %v", inh)
	}
}
