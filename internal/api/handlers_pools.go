package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark-project/bulwark/internal/pool"
	"github.com/bulwark-project/bulwark/internal/poolsvc"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Pools is the resource-pool service and what follows a pool change.
type Pools struct {
	Svc *poolsvc.Service
	// Reconcile writes the current plan to every pool and running VM
	// group (after a pool change); nil without cgroups.
	Reconcile func(ctx context.Context) error
	// Usage reports measured usage of the VMs (cgroups, switch ports);
	// nil: none.
	Usage func(ctx context.Context, vms []string) map[string]VMUsage
}

// VMUsage is one VM's measured resource use.
type VMUsage struct {
	// CPUMilli is the CPU used over the last sampling interval, and
	// CPUMilliAvg over the last minute, in millicores.
	CPUMilli    int64 `json:"cpu_millicores"`
	CPUMilliAvg int64 `json:"cpu_millicores_1m"`
	// Throttled is the share of periods the CPU cap held the VM back
	// (0..1) over the last interval.
	Throttled float64 `json:"cpu_throttled"`
	MemoryMiB int64   `json:"memory_mib"`
	// Disk and network byte rates over the last interval.
	DiskReadBps  int64 `json:"disk_read_bytes_per_sec"`
	DiskWriteBps int64 `json:"disk_write_bytes_per_sec"`
	NetRxBps     int64 `json:"net_rx_bits_per_sec"`
	NetTxBps     int64 `json:"net_tx_bits_per_sec"`
}

// SetPools enables the resource-pool routes and the pool checks of VM
// definitions.
func (s *Server) SetPools(p *Pools) { s.pools = p }

// PoolPath is a pool's object path: /pools for the root, /pools/NAME.
func PoolPath(name string) string {
	if name == "" || name == pool.RootName {
		return "/pools"
	}
	return "/pools/" + name
}

func poolsRoot(*http.Request) string  { return "/pools" }
func rpoolObj(r *http.Request) string { return PoolPath(r.PathValue("name")) }

func needPools(h func(s *Server, w http.ResponseWriter, r *http.Request) error) func(s *Server, w http.ResponseWriter, r *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		if s.pools == nil {
			return &httpError{code: http.StatusServiceUnavailable, msg: "resource pools are not enabled on this daemon"}
		}
		return poolError(h(s, w, r))
	}
}

// poolError maps the pool package's error kinds to HTTP statuses.
func poolError(err error) error {
	var pe *pool.Error
	if !errors.As(err, &pe) {
		return err
	}
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, pool.ErrNoRoom), errors.Is(err, pool.ErrInUse):
		code = http.StatusConflict
	case errors.Is(err, pool.ErrNotFound):
		code = http.StatusNotFound
	}
	return &httpError{code: code, msg: pe.Error(), field: pe.Field}
}

// PoolView is a pool as the API shows it: its status and the measured use
// of its VMs.
type PoolView struct {
	poolsvc.Status
	VMUsage map[string]VMUsage `json:"vm_usage,omitempty"`
}

func (s *Server) poolView(ctx context.Context, st poolsvc.Status) PoolView {
	v := PoolView{Status: st}
	if s.pools.Usage != nil && len(st.VMs) > 0 {
		v.VMUsage = s.pools.Usage(ctx, st.VMs)
	}
	return v
}

func (s *Server) listRPools(w http.ResponseWriter, r *http.Request) error {
	list, err := s.pools.Svc.List(r.Context())
	if err != nil {
		return err
	}
	list = filterSlice(list, s.visible(r, PrivPoolAudit), func(st poolsvc.Status) string { return PoolPath(st.Pool.Name) })
	out := make([]PoolView, len(list))
	for i, st := range list {
		out[i] = s.poolView(r.Context(), st)
	}
	return writeList(w, out)
}

func (s *Server) getRPool(w http.ResponseWriter, r *http.Request) error {
	st, err := s.pools.Svc.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.poolView(r.Context(), st))
}

// createPool needs Pool.Config on the parent's path (/pools for a pool of
// the root).
func (s *Server) createRPool(w http.ResponseWriter, r *http.Request) error {
	var p pool.Pool
	if err := decodeStrict(r.Body, &p); err != nil {
		return err
	}
	if p.Parent == pool.RootName {
		p.Parent = ""
	}
	if err := s.callerCheck(r, PrivPoolConfig, PoolPath(p.Parent))(); err != nil {
		return &httpError{code: http.StatusForbidden, field: "parent", msg: fmt.Sprintf("a pool under %s needs %s there: %v", PoolPath(p.Parent), PrivPoolConfig, err)}
	}
	if err := s.pools.Svc.Create(r.Context(), p); err != nil {
		return err
	}
	auditTarget(r, PoolPath(p.Name), "created pool %s under %s: cpu %+v memory %+v expandable %t", p.Name, PoolPath(p.Parent), p.CPU, p.Memory, p.Expandable)
	s.afterPoolChange(r)
	st, err := s.pools.Svc.Get(r.Context(), p.Name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, s.poolView(r.Context(), st))
}

// updatePool replaces a pool's definition; moving it under another parent
// needs Pool.Config there too.
func (s *Server) updateRPool(w http.ResponseWriter, r *http.Request) error {
	var p pool.Pool
	if err := decodeStrict(r.Body, &p); err != nil {
		return err
	}
	name := r.PathValue("name")
	if p.Name == "" {
		p.Name = name
	}
	if p.Name != name {
		return badRequest("name", "pools cannot be renamed (%q in the body, %q in the path)", p.Name, name)
	}
	if p.Parent == pool.RootName {
		p.Parent = ""
	}
	old, ok := s.pools.Svc.Tree().Lookup(name)
	if old.Parent == pool.RootName {
		old.Parent = ""
	}
	if ok && old.Parent != p.Parent {
		if err := s.callerCheck(r, PrivPoolConfig, PoolPath(p.Parent))(); err != nil {
			return &httpError{code: http.StatusForbidden, field: "parent", msg: fmt.Sprintf("moving pool %s under %s needs %s there: %v", name, PoolPath(p.Parent), PrivPoolConfig, err)}
		}
		// The pool's VMs and pools inherit from its new ancestors: the
		// gate checks what that gives their users before anything moves.
		if s.access != nil {
			nt, err := s.pools.Svc.PreviewUpdate(r.Context(), p)
			if err != nil {
				return err
			}
			vms, err := s.mgr.List(r.Context())
			if err != nil {
				return err
			}
			if err := s.access.CheckInherit(actor(r), poolsvc.InheritOf(nt, vms)); err != nil {
				return &httpError{code: http.StatusForbidden, field: "parent", msg: err.Error()}
			}
		}
	}
	if err := s.pools.Svc.Update(r.Context(), p); err != nil {
		return err
	}
	auditTarget(r, PoolPath(name), "changed pool %s: parent %s cpu %+v memory %+v disk %+v expandable %t", name, PoolPath(p.Parent), p.CPU, p.Memory, p.Disk, p.Expandable)
	s.afterPoolChange(r)
	st, err := s.pools.Svc.Get(r.Context(), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.poolView(r.Context(), st))
}

func (s *Server) deleteRPool(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := s.pools.Svc.Delete(r.Context(), name); err != nil {
		return err
	}
	auditTarget(r, PoolPath(name), "deleted pool %s", name)
	s.afterPoolChange(r)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// afterPoolChange brings the cgroups and the permission inheritance to
// the new tree. The change itself is already stored: failures here are
// logged, and the next VM start or pool change retries.
func (s *Server) afterPoolChange(r *http.Request) {
	if s.pools.Reconcile != nil {
		if err := s.pools.Reconcile(r.Context()); err != nil {
			s.log.Error("resource pools: the cgroups could not follow a pool change", "err", err)
		}
	}
	if err := s.refreshInherit(r.Context(), actor(r)); err != nil {
		s.log.Error("resource pools: permission inheritance not updated", "err", err)
	}
}

// inheritFor is the inheritance map with VM spec's pool as given.
func (s *Server) inheritFor(ctx context.Context, spec *vm.Spec) (map[string][]string, error) {
	vms, err := s.mgr.List(ctx)
	if err != nil {
		return nil, err
	}
	if spec != nil {
		found := false
		for i, v := range vms {
			if v.Spec.Name == spec.Name {
				c := *v
				c.Spec = *spec
				vms[i] = &c
				found = true
			}
		}
		if !found {
			vms = append(vms, &vm.VM{Spec: *spec})
		}
	}
	return s.pools.Svc.Inherit(vms), nil
}

// refreshInherit installs the inheritance the current pools and VMs imply.
func (s *Server) refreshInherit(ctx context.Context, who string) error {
	if s.access == nil || s.pools == nil {
		return nil
	}
	m, err := s.inheritFor(ctx, nil)
	if err != nil {
		return err
	}
	return s.access.SetInherit(who, m)
}

// RefreshInherit installs the inheritance at daemon start.
func (s *Server) RefreshInherit(ctx context.Context) error {
	return s.refreshInherit(ctx, "root")
}

// checkPool runs the privilege checks of a VM's pool and resources, as a
// definition names them (old nil at creation): Pool.Allocate on the pool
// for joining it or reserving in it, the no-escalation gate for what the
// pool's grants would give its users over the VM, and the pool arithmetic
// (the pool exists; a running VM's new claim fits).
func (s *Server) checkPool(r *http.Request, old *vm.Spec, spec vm.Spec) error {
	if s.pools == nil {
		if spec.Pool != "" || spec.Resources != nil {
			return &httpError{code: http.StatusServiceUnavailable, field: "pool", msg: "resource pools are not enabled on this daemon"}
		}
		return nil
	}
	moved := old == nil || old.Pool != spec.Pool
	reserving := spec.Resources != nil && (spec.Resources.CPU.ReservationMilli > 0 || spec.Resources.Memory.ReservationMiB > 0)
	changedRes := old == nil || fmt.Sprint(old.Resources) != fmt.Sprint(spec.Resources)
	if (moved && spec.Pool != "") || (reserving && changedRes) {
		obj := PoolPath(spec.Pool)
		if err := s.callerCheck(r, PrivPoolAllocate, obj)(); err != nil {
			return &httpError{code: http.StatusForbidden, field: "pool", msg: fmt.Sprintf("placing a VM in pool %s, or reserving there, needs %s on %s: %v", poolName(spec.Pool), PrivPoolAllocate, obj, err)}
		}
	}
	if spec.Pool != "" {
		if _, ok := s.pools.Svc.Tree().Lookup(spec.Pool); !ok {
			return &httpError{code: http.StatusBadRequest, field: "pool", msg: fmt.Sprintf("pool %q does not exist", spec.Pool)}
		}
	}
	if moved && s.access != nil {
		m, err := s.inheritFor(r.Context(), &spec)
		if err != nil {
			return err
		}
		if err := s.access.CheckInherit(actor(r), m); err != nil {
			return &httpError{code: http.StatusForbidden, field: "pool", msg: err.Error()}
		}
	}
	return nil
}

func poolName(p string) string {
	if p == "" {
		return pool.RootName
	}
	return p
}
