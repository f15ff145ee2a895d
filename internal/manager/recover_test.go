package manager

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-project/bulwark/internal/cgroup"
	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Fakes for the recovery decisions; the real components are exercised by
// itest.TestDaemonKilledDuringStart and TestDaemonRestart.

type fakeStore struct {
	mu  sync.Mutex
	vms map[string]*vm.VM
}

func (s *fakeStore) CreateVM(_ context.Context, spec vm.Spec) (*vm.VM, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &vm.VM{Spec: spec, State: vm.Defined}
	s.vms[spec.Name] = v
	return v, nil
}

func (s *fakeStore) GetVM(_ context.Context, name string) (*vm.VM, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vms[name]
	if !ok {
		return nil, errors.New("not found")
	}
	c := *v
	return &c, nil
}

func (s *fakeStore) ListVMs(ctx context.Context) ([]*vm.VM, error) {
	s.mu.Lock()
	var names []string
	for n := range s.vms {
		names = append(names, n)
	}
	s.mu.Unlock()
	slices.Sort(names)
	var out []*vm.VM
	for _, n := range names {
		v, _ := s.GetVM(ctx, n)
		out = append(out, v)
	}
	return out, nil
}

func (s *fakeStore) SetState(_ context.Context, name string, st vm.State, reason string, rt vm.Runtime) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vms[name]
	v.State, v.Reason, v.Runtime = st, reason, rt
	return nil
}

func (s *fakeStore) SetSpec(context.Context, string, vm.Spec) error { return nil }
func (s *fakeStore) DeleteVM(context.Context, string) error         { return nil }

// fakeBackend re-attaches to the PIDs in live and fails the others.
type fakeBackend struct {
	live     map[int]bool
	attachEr error // returned for PIDs not live (nil: hv.ErrGone)
}

func (b *fakeBackend) Name() string { return "fake" }
func (b *fakeBackend) Launch(context.Context, hv.LaunchConfig) (hv.Instance, error) {
	return nil, errors.New("not in this test")
}
func (b *fakeBackend) Attach(_ context.Context, h hv.Handle, _ hv.AttachConfig) (hv.Instance, error) {
	if b.live[h.PID] {
		return &fakeInstance{h: h, done: make(chan struct{})}, nil
	}
	if b.attachEr != nil {
		return nil, b.attachEr
	}
	return nil, hv.ErrGone
}

type fakeInstance struct {
	h    hv.Handle
	done chan struct{}
}

func (i *fakeInstance) Handle() hv.Handle                             { return i.h }
func (i *fakeInstance) Status(context.Context) (string, error)        { return "running", nil }
func (i *fakeInstance) Pause(context.Context) error                   { return nil }
func (i *fakeInstance) Resume(context.Context) error                  { return nil }
func (i *fakeInstance) Shutdown(context.Context) error                { return nil }
func (i *fakeInstance) Kill(context.Context) error                    { return nil }
func (i *fakeInstance) DialConsole(context.Context) (net.Conn, error) { return nil, errors.New("none") }
func (i *fakeInstance) Done() <-chan struct{}                         { return i.done }
func (i *fakeInstance) Exit() hv.Exit                                 { return hv.Exit{} }
func (i *fakeInstance) Detach()                                       {}

// fakeCgroups records which VM groups were released.
type fakeCgroups struct {
	mu       sync.Mutex
	groups   map[string][]int
	released []string
}

func (c *fakeCgroups) Prepare(context.Context, string, string, cgroup.Limits) (func(int) error, []string, error) {
	return func(int) error { return nil }, nil, nil
}
func (c *fakeCgroups) ApplyPool(string, cgroup.Limits) ([]string, error) { return nil, nil }
func (c *fakeCgroups) RemovePool(string) error                           { return nil }
func (c *fakeCgroups) OOMKills(string) uint64                            { return 0 }
func (c *fakeCgroups) Release(_ context.Context, vm string) ([]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pids := c.groups[vm]
	delete(c.groups, vm)
	c.released = append(c.released, vm)
	return pids, nil
}
func (c *fakeCgroups) List() ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for n := range c.groups {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// TestRecoverKillsWhatItCannotAttach: after a daemon crash, a VM whose
// hypervisor is re-attached keeps running; every other VM cgroup with
// processes (a VM recorded as starting with no PID yet, one whose re-attach
// failed, one the store does not even record as active) is killed and
// released, and those VMs are recorded as crashed with the reason.
func TestRecoverKillsWhatItCannotAttach(t *testing.T) {
	st := &fakeStore{vms: map[string]*vm.VM{
		"alive":    {Spec: vm.Spec{Name: "alive"}, State: vm.Running, Runtime: vm.Runtime{PID: 100, StartTime: 1}},
		"starting": {Spec: vm.Spec{Name: "starting"}, State: vm.Starting},
		"broken":   {Spec: vm.Spec{Name: "broken"}, State: vm.Running, Runtime: vm.Runtime{PID: 300, StartTime: 3}},
		"stopped":  {Spec: vm.Spec{Name: "stopped"}, State: vm.Stopped},
	}}
	cg := &fakeCgroups{groups: map[string][]int{
		"alive": {100}, "starting": {200}, "broken": {300}, "stopped": {400}, "deleted": {500},
	}}
	b := &fakeBackend{live: map[int]bool{100: true}, attachEr: errors.New("guest memory descriptor is not the VM's RAM")}
	// Not t.TempDir: the re-attached VM's console copier may still create
	// its log directory while the test ends, which fails TempDir's cleanup.
	dir, err := os.MkdirTemp("", "recover-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, err := New(st, b, nil, Config{RunRoot: dir + "/run", LogRoot: dir + "/log"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetCgroups(cg)
	if err := m.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	slices.Sort(cg.released)
	if want := []string{"broken", "deleted", "starting", "stopped"}; !slices.Equal(cg.released, want) {
		t.Errorf("released %v, want %v (never the re-attached VM)", cg.released, want)
	}
	want := map[string]vm.State{"alive": vm.Running, "starting": vm.Crashed, "broken": vm.Crashed, "stopped": vm.Stopped}
	for name, ws := range want {
		v, _ := st.GetVM(context.Background(), name)
		if v.State != ws {
			t.Errorf("%s: %s %q, want %s", name, v.State, v.Reason, ws)
		}
	}
	if v, _ := st.GetVM(context.Background(), "broken"); v.Reason == "" || !strings.Contains(v.Reason, "processes were killed") {
		t.Errorf("broken: reason %q does not say its processes were killed", v.Reason)
	}
}
