package api

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// SetImageDirs names the directories whose files any user allowed to
// create VMs may use as kernel, initrd or disk (the administrator's image
// store). Anything else is a host path and needs VM.HostPaths on /: the
// daemon opens these files as root, so a VM definition naming /etc/shadow
// as a disk would hand the host's secrets to the guest.
func (s *Server) SetImageDirs(dirs []string) {
	s.imageDirs = nil
	for _, d := range dirs {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			d = r
		}
		s.imageDirs = append(s.imageDirs, filepath.Clean(d))
	}
}

// hostPaths returns the fields of spec that name files outside the image
// directories, disks that are not regular files (block devices), or image
// files attached read-write. Paths
// are judged after resolving symlinks, so a link inside an image directory
// pointing out of it counts as outside.
func hostPaths(spec vm.Spec, imageDirs []string) []string {
	var out []string
	check := func(field, p string, regular bool) {
		if p == "" {
			return
		}
		if !underImageDir(p, imageDirs) {
			out = append(out, fmt.Sprintf("%s %s", field, p))
			return
		}
		if strings.HasSuffix(field, "(read-write)") {
			// Image files are shared by every VM that boots from them: one
			// VM writing to them would change what others run.
			out = append(out, fmt.Sprintf("%s %s (an image file is shared; attach it read_only)", field, p))
			return
		}
		if regular {
			if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
				out = append(out, fmt.Sprintf("%s %s (not a regular file)", field, p))
			}
		}
	}
	check("kernel", spec.Kernel, false)
	check("initrd", spec.Initrd, false)
	for i, d := range spec.Disks {
		field := fmt.Sprintf("disks[%d]", i)
		if !d.ReadOnly {
			field += " (read-write)"
		}
		check(field, d.Path, true)
	}
	return out
}

func underImageDir(p string, dirs []string) bool {
	r, err := filepath.EvalSymlinks(filepath.Clean(p))
	if err != nil {
		return false
	}
	for _, d := range dirs {
		if strings.HasPrefix(r, d+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// checkHostPaths refuses a definition naming host paths unless the caller
// holds VM.HostPaths on /, and disks on storage volumes unless the caller
// holds VM.Config.Disk on the VM and Datastore.Allocate on each volume
// (the guest reads and writes its data).
func (s *Server) checkHostPaths(r *http.Request, spec vm.Spec) error {
	if err := s.checkVolumeDisks(r, spec); err != nil {
		return err
	}
	bad := hostPaths(spec, s.imageDirs)
	if len(bad) == 0 {
		return nil
	}
	if err := s.callerCheck(r, PrivVMHostPath, "/")(); err != nil {
		return &httpError{code: http.StatusForbidden, msg: fmt.Sprintf(
			"%s: outside the image directories (%s); host paths in a VM definition need %s on /: %v",
			strings.Join(bad, ", "), strings.Join(s.imageDirs, ", "), PrivVMHostPath, err)}
	}
	return nil
}

// checkAttach refuses NICs on networks, or in security groups, where the
// caller lacks Network.Attach: which network a NIC is on and which groups
// it is in decide what it may reach, so choosing them is network power,
// not VM power.
func (s *Server) checkAttach(r *http.Request, spec vm.Spec) error {
	for i, n := range spec.NICs {
		var objs []string
		if n.Network != "" {
			objs = append(objs, "/networks/"+n.Network)
		}
		for _, g := range n.Groups {
			objs = append(objs, "/security-groups/"+g)
		}
		for _, obj := range objs {
			if err := s.callerCheck(r, PrivNetAttach, obj)(); err != nil {
				return &httpError{code: http.StatusForbidden, field: fmt.Sprintf("nics[%d]", i),
					msg: fmt.Sprintf("nics[%d]: attaching a NIC needs %s on %s: %v", i, PrivNetAttach, obj, err)}
			}
		}
	}
	return nil
}

// checkVolumeDisks checks the privileges a disk on a volume needs.
func (s *Server) checkVolumeDisks(r *http.Request, spec vm.Spec) error {
	for i, d := range spec.Disks {
		if d.Volume == "" {
			continue
		}
		field := fmt.Sprintf("disks[%d].volume", i)
		pool, name, err := storage.ParseRef(d.Volume)
		if err != nil {
			return badRequest(field, "%s: %v", field, err)
		}
		for _, c := range []struct{ priv, obj string }{
			{PrivVMConfigDisk, "/vms/" + spec.Name},
			{PrivDatastoreAllocate, storage.ObjectPath(pool, name)},
		} {
			if err := s.callerCheck(r, c.priv, c.obj)(); err != nil {
				return &httpError{code: http.StatusForbidden, field: field,
					msg: fmt.Sprintf("%s: a disk on volume %s needs %s on %s: %v", field, d.Volume, c.priv, c.obj, err)}
			}
		}
	}
	return nil
}
