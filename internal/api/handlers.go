package api

import (
	_ "embed"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-project/bulwark/internal/consolelog"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
)

//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the embedded API description.
func OpenAPI() []byte { return openapiJSON }

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openapiJSON)
	return err
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{
		"version": s.info.Version, "commit": s.info.Commit, "go_version": s.info.GoVersion})
}

func (s *Server) host(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.info)
}

func (s *Server) listVMs(w http.ResponseWriter, r *http.Request) error {
	vms, err := s.mgr.List(r.Context())
	if err != nil {
		return err
	}
	see := s.visible(r, PrivVMAudit)
	return writeList(w, filterSlice(vms, see, func(v *vm.VM) string { return "/vms/" + v.Spec.Name }))
}

func (s *Server) createVM(w http.ResponseWriter, r *http.Request) error {
	spec, err := DecodeSpec(r.Body)
	if err != nil {
		return err
	}
	var plan *imagePlan
	if spec.Image != "" {
		if plan, err = s.resolveImage(r, &spec); err != nil {
			return err
		}
	}
	if err := s.checkHostPaths(r, spec); err != nil {
		return err
	}
	if err := s.checkAttach(r, spec); err != nil {
		return err
	}
	if err := s.checkPool(r, nil, spec); err != nil {
		return err
	}
	// A console policy loosens or tightens who may use the console: setting
	// one is a configuration change, whoever may create VMs.
	if spec.Console != nil {
		obj := "/vms/" + spec.Name
		if err := s.callerCheck(r, PrivVMConfig, obj)(); err != nil {
			return &httpError{code: http.StatusForbidden, msg: "setting a console policy needs VM.Config: " + err.Error()}
		}
	}
	undo := func() {}
	if plan != nil {
		if _, err := s.mgr.Get(r.Context(), spec.Name); err == nil {
			return fmt.Errorf("vm %q: %w", spec.Name, store.ErrExists) // before making its root volume
		}
		if undo, err = s.createRoot(r.Context(), plan); err != nil {
			return err
		}
	}
	v, err := s.mgr.Create(r.Context(), spec)
	if err != nil {
		undo()
		return err
	}
	auditTarget(r, "/vms/"+v.Spec.Name, "created VM %s: %d vCPU, %d MiB, kernel %s, %d disks, %d NICs, pool %s", v.Spec.Name, v.Spec.VCPUs, v.Spec.MemoryMiB, v.Spec.Kernel, len(v.Spec.Disks), len(v.Spec.NICs), poolName(v.Spec.Pool))
	if v.Spec.Pool != "" {
		if err := s.refreshInherit(r.Context(), actor(r)); err != nil {
			s.log.Error("resource pools: permission inheritance not updated", "vm", v.Spec.Name, "err", err)
		}
	}
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) getVM(w http.ResponseWriter, r *http.Request) error {
	v, err := s.mgr.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) deleteVM(w http.ResponseWriter, r *http.Request) error {
	if err := s.mgr.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	if err := s.refreshInherit(r.Context(), actor(r)); err != nil {
		s.log.Error("resource pools: permission inheritance not updated", "vm", r.PathValue("name"), "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) startVM(w http.ResponseWriter, r *http.Request) error {
	v, err := s.mgr.Start(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// Bounds of the stop timeout, in seconds.
const maxStopTimeout = 600

func (s *Server) stopVM(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	force := false
	if f := q.Get("force"); f != "" {
		b, err := strconv.ParseBool(f)
		if err != nil {
			return badRequest("force", "force=%q is not a boolean", f)
		}
		force = b
	}
	var timeout time.Duration
	if t := q.Get("timeout"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > maxStopTimeout {
			return badRequest("timeout", "timeout=%q must be 1..%d seconds", t, maxStopTimeout)
		}
		timeout = time.Duration(n) * time.Second
	}
	v, err := s.mgr.Stop(r.Context(), r.PathValue("name"), force, timeout)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) pauseVM(w http.ResponseWriter, r *http.Request) error {
	v, err := s.mgr.Pause(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) resumeVM(w http.ResponseWriter, r *http.Request) error {
	v, err := s.mgr.Resume(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// Console log reads are bounded; the default is enough for a boot log.
const (
	defaultLogBytes = 64 << 10
	maxLogBytes     = 4 << 20
)

func (s *Server) consoleLog(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := s.mgr.Get(r.Context(), name); err != nil {
		return err
	}
	n, err := bytesParam(r)
	if err != nil {
		return err
	}
	data, err := consolelog.Tail(s.mgr.ConsoleLogPath(name), s.mgr.ConsoleKeep(), n)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err = w.Write(data)
	return err
}

// bytesParam reads the bounded ?bytes= of the log-tail routes.
func bytesParam(r *http.Request) (int64, error) {
	b := r.URL.Query().Get("bytes")
	if b == "" {
		return defaultLogBytes, nil
	}
	v, err := strconv.ParseInt(b, 10, 64)
	if err != nil || v < 1 || v > maxLogBytes {
		return 0, badRequest("bytes", "bytes=%q must be 1..%d", b, maxLogBytes)
	}
	return v, nil
}
