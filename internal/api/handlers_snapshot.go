package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// Snapshot routes: /api/v1/vms/{name}/snapshots[/{snap}[/revert|restore|verify]].
// Reading snapshot records needs VM.Audit on the VM (they hold its
// definition, which VM.Audit already shows); taking, verifying, reverting
// and deleting need VM.Snapshot; restoring into a new VM also needs what
// creating that VM would (VM.Create on /vms, Datastore.Allocate on the
// pool for its new volumes, and the usual disk, host-path and network
// checks on the recorded definition).

// SnapshotRequest is the body of createSnapshot.
type SnapshotRequest struct {
	Name string `json:"name"` // VM-name rules
}

// RestoreRequest is the body of restoreSnapshot: the new VM's name.
type RestoreRequest struct {
	Name string `json:"name"`
}

func snapObj(r *http.Request) string { return "/vms/" + r.PathValue("name") }

func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request) error {
	var req SnapshotRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	snap, err := s.mgr.CreateSnapshot(r.Context(), name, req.Name)
	if err != nil {
		return err
	}
	var frozen []string
	for _, d := range snap.Disks {
		if f := d.Frozen(); f != "" {
			frozen = append(frozen, fmt.Sprintf("disks[%d] %s as %s sha256 %s", d.Disk, d.Volume, f, d.Layers[0].SHA256))
		}
	}
	auditTarget(r, snapObj(r), "took snapshot %s of VM %s (running: %v): %s", snap.Name, name, snap.Running, strings.Join(frozen, ", "))
	return writeJSON(w, http.StatusCreated, snap)
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) error {
	list, err := s.mgr.ListSnapshots(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if list == nil {
		list = []storage.Snapshot{}
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request) error {
	snap, err := s.mgr.GetSnapshot(r.Context(), r.PathValue("name"), r.PathValue("snap"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, snap)
}

func (s *Server) deleteSnapshot(w http.ResponseWriter, r *http.Request) error {
	name, snap := r.PathValue("name"), r.PathValue("snap")
	if err := s.mgr.DeleteSnapshot(r.Context(), name, snap); err != nil {
		return err
	}
	auditTarget(r, snapObj(r), "deleted snapshot %s of VM %s", snap, name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) revertSnapshot(w http.ResponseWriter, r *http.Request) error {
	name, snap := r.PathValue("name"), r.PathValue("snap")
	sn, err := s.mgr.RevertSnapshot(r.Context(), name, snap)
	if err != nil {
		return err
	}
	auditTarget(r, snapObj(r), "reverted VM %s to snapshot %s (taken %s); the disks' later changes are discarded", name, snap, sn.Created.Format("2006-01-02T15:04:05Z"))
	return writeJSON(w, http.StatusOK, sn)
}

func (s *Server) verifySnapshot(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.mgr.VerifySnapshot(r.Context(), r.PathValue("name"), r.PathValue("snap"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

// restoreSnapshot makes a new VM from a snapshot. The route checks
// VM.Snapshot on the source VM; authorizeRestore checks the rest.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) error {
	var req RestoreRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		return err
	}
	name, snap := r.PathValue("name"), r.PathValue("snap")
	v, err := s.mgr.RestoreSnapshot(r.Context(), name, snap, req.Name, func(spec vm.Spec) error {
		return s.authorizeRestore(r, spec)
	})
	if err != nil {
		return err
	}
	auditTarget(r, "/vms/"+v.Spec.Name, "restored snapshot %s of VM %s as new VM %s (%d disks)", snap, name, v.Spec.Name, len(v.Spec.Disks))
	return writeJSON(w, http.StatusCreated, v)
}

// authorizeRestore: a restore creates a VM and volumes, so it needs what
// creating them needs.
func (s *Server) authorizeRestore(r *http.Request, spec vm.Spec) error {
	if err := s.callerCheck(r, PrivVMCreate, "/vms")(); err != nil {
		return &httpError{code: http.StatusForbidden, msg: fmt.Sprintf("restoring a snapshot creates VM %s: it needs %s on /vms: %v", spec.Name, PrivVMCreate, err)}
	}
	seen := map[string]bool{}
	for _, d := range spec.Disks {
		if d.Volume == "" || d.ReadOnly {
			continue
		}
		pool, _, err := storage.ParseRef(d.Volume)
		if err != nil || seen[pool] {
			continue
		}
		seen[pool] = true
		if err := s.callerCheck(r, PrivDatastoreAllocate, storage.PoolPath(pool))(); err != nil {
			return &httpError{code: http.StatusForbidden, msg: fmt.Sprintf("restoring a snapshot creates volume %s: it needs %s on %s: %v", d.Volume, PrivDatastoreAllocate, storage.PoolPath(pool), err)}
		}
	}
	if err := s.checkHostPaths(r, spec); err != nil {
		return err
	}
	return s.checkAttach(r, spec)
}
