// Package poolsvc keeps Bulwark's resource pools: it stores them, checks
// every change with the pool arithmetic (internal/pool) against the VMs
// that run, admits VM starts, and computes the cgroup controls the manager
// writes. Decisions are internal/pool's; this package does the I/O around
// them (the store, the VM list) and serialises changes so that two starts
// cannot both take the last of a reservation.
package poolsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/bulwark-project/bulwark/internal/pool"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// ObjectKind is the store kind of pool documents.
const ObjectKind = "pool"

// Store is the part of internal/store the service uses.
type Store interface {
	CreateObject(ctx context.Context, kind, name string, spec []byte) error
	UpdateObject(ctx context.Context, kind, name string, spec []byte) error
	ListObjects(ctx context.Context, kind string) ([]*store.Object, error)
	DeleteObject(ctx context.Context, kind, name string) error
}

// VMs lists the defined VMs (the manager).
type VMs interface {
	List(ctx context.Context) ([]*vm.VM, error)
}

// Service holds the pool tree.
type Service struct {
	st       Store
	vms      VMs
	overhead int64 // MiB added to each VM's hard memory cap
	log      *slog.Logger

	mu      sync.Mutex
	tree    *pool.Tree
	pending map[string]pool.VMClaim // admitted, not yet running
}

// New loads the stored pools against the host's capacity. A stored tree
// that no longer fits the capacity (the host lost memory) is kept and
// reported: VMs that do not fit are refused at start, nothing is deleted.
func New(ctx context.Context, st Store, vms VMs, capacity pool.Capacity, overheadMiB int64, log *slog.Logger) (*Service, error) {
	objs, err := st.ListObjects(ctx, ObjectKind)
	if err != nil {
		return nil, fmt.Errorf("pools: %w", err)
	}
	var pools []pool.Pool
	for _, o := range objs {
		var p pool.Pool
		if err := json.Unmarshal(o.Spec, &p); err != nil {
			return nil, fmt.Errorf("pools: stored pool %q: %w", o.Name, err)
		}
		pools = append(pools, p)
	}
	t, err := pool.NewTree(capacity, pools)
	if err != nil {
		return nil, fmt.Errorf("pools: the stored pools do not fit this host (capacity %dm CPU, %d MiB): %w", capacity.CPUMilli, capacity.MemoryMiB, err)
	}
	s := &Service{st: st, vms: vms, overhead: overheadMiB, log: log, tree: t, pending: map[string]pool.VMClaim{}}
	if running, _, err := s.running(ctx); err == nil {
		if err := pool.Check(t, running); err != nil {
			log.Error("pools: the running VMs hold more than the pools allow on this host; starts that need a reservation will be refused until they fit", "err", err)
		}
	}
	return s, nil
}

// Tree returns the current tree (read-only).
func (s *Service) Tree() *pool.Tree {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tree
}

// active reports whether a VM's reservations count: it runs, or is on its
// way up or down.
func active(st vm.State) bool { return st.Active() }

// running returns the claims of the active VMs and the pending starts, and
// every defined VM by name.
func (s *Service) running(ctx context.Context) ([]pool.VMClaim, map[string]*vm.VM, error) {
	list, err := s.vms.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	all := make(map[string]*vm.VM, len(list))
	var out []pool.VMClaim
	for _, v := range list {
		all[v.Spec.Name] = v
		if _, starting := s.pending[v.Spec.Name]; starting {
			continue
		}
		if active(v.State) {
			out = append(out, pool.ClaimFromSpec(&v.Spec, s.overhead))
		}
	}
	for _, c := range s.pending {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b pool.VMClaim) int { return cmpString(a.Name, b.Name) })
	return out, all, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func encode(p pool.Pool) ([]byte, error) { return json.Marshal(p) }

// Create adds a pool after checking it against the tree and the running
// VMs.
func (s *Service) Create(ctx context.Context, p pool.Pool) error {
	return s.change(ctx, pool.Change{Kind: pool.CreatePool, Pool: p}, func(ctx context.Context) error {
		b, err := encode(p)
		if err != nil {
			return err
		}
		return s.st.CreateObject(ctx, ObjectKind, p.Name, b)
	})
}

// Update replaces a pool's definition (not its name).
func (s *Service) Update(ctx context.Context, p pool.Pool) error {
	return s.change(ctx, pool.Change{Kind: pool.SetPool, Pool: p}, func(ctx context.Context) error {
		b, err := encode(p)
		if err != nil {
			return err
		}
		return s.st.UpdateObject(ctx, ObjectKind, p.Name, b)
	})
}

// Delete removes a pool that holds no VMs (running or not) and no pools.
func (s *Service) Delete(ctx context.Context, name string) error {
	return s.change(ctx, pool.Change{Kind: pool.DeletePool, Name: name}, func(ctx context.Context) error {
		return s.st.DeleteObject(ctx, ObjectKind, name)
	})
}

// change checks c, persists it and installs the new tree, all under the
// lock: nothing is half-applied.
func (s *Service) change(ctx context.Context, c pool.Change, persist func(context.Context) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	running, all, err := s.running(ctx)
	if err != nil {
		return err
	}
	if c.Kind == pool.DeletePool {
		for _, v := range all {
			c.Members = append(c.Members, pool.Member{VM: v.Spec.Name, Pool: v.Spec.Pool})
		}
	}
	nt, err := pool.CheckChange(s.tree, running, c)
	if err != nil {
		return err
	}
	if err := persist(ctx); err != nil {
		if errors.Is(err, store.ErrExists) {
			return &pool.Error{Kind: pool.ErrInvalid, Field: "name", Msg: err.Error()}
		}
		return err
	}
	s.tree = nt
	return nil
}

// CheckVM decides whether a VM's definition may change from old to new:
// the new pool must exist, and for an active VM the new claim must fit in
// place of the old one (a raised reservation, a move to another pool).
func (s *Service) CheckVM(ctx context.Context, spec vm.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	running, _, err := s.running(ctx)
	if err != nil {
		return err
	}
	_, err = pool.CheckChange(s.tree, running, pool.Change{Kind: pool.SetVM, VM: pool.ClaimFromSpec(&spec, s.overhead)})
	return err
}

// Placement is where and how a VM runs: its cgroup controls and those of
// every pool (parents first), to be written before the VM's, and the new
// controls of the other active VMs (weights are relative among siblings,
// so a start can change them).
type Placement struct {
	VM     pool.Group
	Pools  []pool.Group
	Others []pool.Group
}

// Admit decides a VM start: its reservations must fit its pool (and the
// expandable ancestors). Admitted, the VM counts as running for every
// other decision until release is called (when the start failed, or once
// the VM's state records it as running).
func (s *Service) Admit(ctx context.Context, spec vm.Spec) (Placement, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	running, _, err := s.running(ctx)
	if err != nil {
		return Placement{}, nil, err
	}
	claim := pool.ClaimFromSpec(&spec, s.overhead)
	others := slices.DeleteFunc(slices.Clone(running), func(c pool.VMClaim) bool { return c.Name == spec.Name })
	if err := pool.Admit(s.tree, others, claim); err != nil {
		return Placement{}, nil, err
	}
	plan, err := pool.NewPlan(s.tree, append(others, claim))
	if err != nil {
		return Placement{}, nil, err
	}
	var pl Placement
	pl.Pools = plan.Pools
	for _, g := range plan.VMs {
		if g.VM == spec.Name {
			pl.VM = g
		} else {
			pl.Others = append(pl.Others, g)
		}
	}
	s.pending[spec.Name] = claim
	var once sync.Once
	release := func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.pending, spec.Name)
			s.mu.Unlock()
		})
	}
	return pl, release, nil
}

// Plan computes the controls of every pool and active VM now (after a pool
// change, to update the live groups). With spec, that VM's claim is
// replaced by spec's first, after checking that it fits (a running VM
// moved to another pool, or its reservation raised).
func (s *Service) Plan(ctx context.Context, spec *vm.Spec) (*pool.Plan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	running, _, err := s.running(ctx)
	if err != nil {
		return nil, err
	}
	if spec != nil {
		claim := pool.ClaimFromSpec(spec, s.overhead)
		if _, err := pool.CheckChange(s.tree, running, pool.Change{Kind: pool.SetVM, VM: claim}); err != nil {
			return nil, err
		}
		for i := range running {
			if running[i].Name == spec.Name {
				running[i] = claim
			}
		}
	}
	return pool.NewPlan(s.tree, running)
}

// Status is one pool for the API: its definition, its accounts, who holds
// its reservations, and the VMs defined in it.
type Status struct {
	Pool pool.Pool `json:"pool"`
	pool.Description
	// Path is the cgroup path below the VM base.
	Path string `json:"cgroup_path"`
	// VMs are the VMs defined in the pool, running or not.
	VMs []string `json:"vms"`
	// Children are the pools directly below it.
	Children []string `json:"children"`
}

// Get describes one pool ("host" or "" for the root).
func (s *Service) Get(ctx context.Context, name string) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	running, all, err := s.running(ctx)
	if err != nil {
		return Status{}, err
	}
	return s.statusLocked(running, all, name)
}

func (s *Service) statusLocked(running []pool.VMClaim, all map[string]*vm.VM, name string) (Status, error) {
	if name == "" {
		name = pool.RootName
	}
	d, err := pool.Describe(s.tree, running, name)
	if err != nil {
		return Status{}, err
	}
	st := Status{Description: d, Children: s.tree.Children(name), VMs: []string{}}
	if p, ok := s.tree.Lookup(name); ok {
		st.Pool = p
	} else {
		st.Pool = pool.Pool{Name: name}
	}
	st.Path, _ = s.tree.Path(name)
	for n, v := range all {
		if poolOf(v.Spec.Pool) == name {
			st.VMs = append(st.VMs, n)
		}
	}
	slices.Sort(st.VMs)
	if st.Children == nil {
		st.Children = []string{}
	}
	return st, nil
}

func poolOf(p string) string {
	if p == "" {
		return pool.RootName
	}
	return p
}

// List describes every pool, the root first.
func (s *Service) List(ctx context.Context) ([]Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	running, all, err := s.running(ctx)
	if err != nil {
		return nil, err
	}
	names := []string{pool.RootName}
	for _, p := range s.tree.Pools() {
		names = append(names, p.Name)
	}
	out := make([]Status, 0, len(names))
	for _, n := range names {
		st, err := s.statusLocked(running, all, n)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Inherit is the permission inheritance the pools imply: each VM in a pool
// inherits from the pool's path and its ancestors' (/pools/NAME, nearest
// first), and each pool from its ancestors'.
func (s *Service) Inherit(vms []*vm.VM) map[string][]string {
	s.mu.Lock()
	t := s.tree
	s.mu.Unlock()
	return InheritOf(t, vms)
}

// PreviewUpdate returns the tree an Update to p would make, without
// making it (for checks that depend on the new tree).
func (s *Service) PreviewUpdate(ctx context.Context, p pool.Pool) (*pool.Tree, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	running, _, err := s.running(ctx)
	if err != nil {
		return nil, err
	}
	return pool.CheckChange(s.tree, running, pool.Change{Kind: pool.SetPool, Pool: p})
}

// InheritOf is the inheritance tree t implies for vms (see Inherit).
func InheritOf(t *pool.Tree, vms []*vm.VM) map[string][]string {
	chain := func(name string) []string {
		var out []string
		for n := name; n != "" && n != pool.RootName; {
			out = append(out, "/pools/"+n)
			p, ok := t.Lookup(n)
			if !ok {
				break
			}
			n = p.Parent
		}
		return out
	}
	m := map[string][]string{}
	for _, p := range t.Pools() {
		if c := chain(p.Parent); len(c) > 0 {
			m["/pools/"+p.Name] = c
		}
	}
	for _, v := range vms {
		if c := chain(v.Spec.Pool); len(c) > 0 {
			m["/vms/"+v.Spec.Name] = c
		}
	}
	return m
}
