package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/bulwark-project/bulwark/internal/imagestore"
	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// VMs from images. A definition naming an image (spec.image) gets its
// kernel, initrd and command line from the registry (each file checked
// against the manifest's SHA-256), and for a disk image a root disk: a thin
// qcow2 overlay volume NAME-root in the default pool on the image's base
// volume. The base is imported once from the template, against the
// manifest's digest, and shared read-only by every VM of that image
// version; nobody can attach it read-write while clones exist.

// imageBaseName is the base volume of one image version: the digest keeps
// two versions of one image name apart.
func imageBaseName(image, sha string) string {
	n := "img-" + image + "-" + sha[:12]
	if len(n) > 63 {
		n = n[:63]
	}
	return strings.TrimRight(n, "-")
}

// parseSize reads "8G", "512M", "1T" or bytes.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	case "T":
		mult = 1 << 40
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, or with K, M, G or T", s)
	}
	return n * mult, nil
}

// imagePlan is what resolveImage decided; createRoot carries it out.
type imagePlan struct {
	base, root string // volume names in the default pool ("" for initramfs images)
	disk       *imagestore.File
	image      string
	size       int64
}

// resolveImage fills spec from its image and returns the root-disk plan.
// It checks Datastore.Audit on /images/NAME, and the kernel and initrd
// against the manifest.
func (s *Server) resolveImage(r *http.Request, spec *vm.Spec) (*imagePlan, error) {
	if err := vm.ValidateName("name", spec.Name); err != nil {
		return nil, err
	}
	reg, ok := s.imageStore()
	if !ok {
		return nil, badRequest("image", "this daemon has no image registry")
	}
	if err := s.callerCheck(r, PrivDatastoreAudit, "/images/"+spec.Image)(); err != nil {
		return nil, &httpError{code: http.StatusForbidden, field: "image", msg: fmt.Sprintf("image %s: needs %s on /images/%s: %v", spec.Image, PrivDatastoreAudit, spec.Image, err)}
	}
	if spec.Kernel != "" || spec.Initrd != "" {
		return nil, badRequest("kernel", "a VM from image %s boots the image's kernel and initrd; leave kernel and initrd empty", spec.Image)
	}
	m, err := reg.Load(spec.Image)
	switch {
	case errors.Is(err, imagestore.ErrNotFound), errors.Is(err, imagestore.ErrInvalidName):
		return nil, badRequest("image", "image %q: %v", spec.Image, err)
	case err != nil:
		return nil, err
	}
	kernel, initrd, err := reg.BootFiles(spec.Image) // size and SHA-256 against the manifest
	if err != nil {
		return nil, &httpError{code: http.StatusConflict, field: "image", msg: fmt.Sprintf("image %s: %v", spec.Image, err)}
	}
	spec.Kernel, spec.Initrd = kernel, initrd
	if m.Cmdline != "" {
		spec.Cmdline = strings.TrimSpace(m.Cmdline + " " + spec.Cmdline)
	}
	plan := &imagePlan{image: spec.Image}
	if disk := m.File(imagestore.RoleDisk); disk != nil {
		if s.storage == nil {
			return nil, badRequest("image", "image %s has a disk, and this daemon has no storage pools", spec.Image)
		}
		if len(disk.SHA256) != 64 {
			return nil, &httpError{code: http.StatusConflict, field: "image", msg: fmt.Sprintf("image %s: disk digest %q is not a SHA-256", spec.Image, disk.SHA256)}
		}
		plan.disk = disk
		plan.base = imageBaseName(spec.Image, disk.SHA256)
		plan.root = spec.Name + "-root"
		if len(plan.root) > 63 {
			return nil, badRequest("name", "name %q: too long for its root volume %s (at most 58 characters with an image)", spec.Name, plan.root)
		}
		size, err := parseSize(r.URL.Query().Get("root_size"))
		if err != nil {
			return nil, badRequest("root_size", "%v", err)
		}
		plan.size = size
		spec.Disks = append([]vm.Disk{{Volume: storage.DefaultPool + "/" + plan.root}}, spec.Disks...)
	}
	return plan, nil
}

// createRoot makes the root volume the plan names (importing the image's
// base volume first when it is missing) and returns a function that
// removes it again if the VM is not created after all.
func (s *Server) createRoot(ctx context.Context, p *imagePlan) (undo func(), err error) {
	if p.disk == nil {
		return func() {}, nil
	}
	reg, _ := s.imageStore()
	if _, err := s.storage.Inspect(ctx, storage.DefaultPool, p.base); err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		// Import checks the stream against the manifest's SHA-256 itself.
		f, mf, err := reg.OpenForCopy(p.image, imagestore.RoleDisk)
		if err != nil {
			return nil, &httpError{code: http.StatusConflict, field: "image", msg: fmt.Sprintf("image %s: %v", p.image, err)}
		}
		_, err = s.storage.Import(ctx, storage.ImportRequest{Pool: storage.DefaultPool, Name: p.base, Format: mf.Format,
			SHA256: mf.SHA256, Length: mf.Size}, f)
		f.Close()
		switch {
		case err == nil, errors.Is(err, storage.ErrConflict): // ErrConflict: imported meanwhile
		case errors.Is(err, storage.ErrInvalid): // the template does not match its manifest
			return nil, &httpError{code: http.StatusConflict, field: "image", msg: fmt.Sprintf("image %s: importing its disk as volume %s: %v", p.image, p.base, err)}
		default:
			return nil, fmt.Errorf("image %s: importing its disk as volume %s: %w", p.image, p.base, err)
		}
	}
	if _, err := s.storage.Clone(ctx, storage.DefaultPool, p.base, p.root); err != nil {
		return nil, err
	}
	undo = func() { s.storage.Delete(context.Background(), storage.DefaultPool, p.root) }
	if p.size > 0 && p.size > p.disk.VirtualSize {
		if _, err := s.storage.Resize(ctx, storage.DefaultPool, p.root, p.size); err != nil {
			undo()
			return nil, err
		}
	}
	return undo, nil
}

// ImageRetarget returns the manager's hook for `vm set --image`: the VM
// takes the new image's kernel, initrd and command line (the old image's
// part of the command line is replaced, the VM's own kept); its disks stay,
// root disk included, so the data does. Files are checked against the new
// manifest.
func ImageRetarget(reg imagestore.Store) func(old vm.Spec, new *vm.Spec) error {
	return func(old vm.Spec, new *vm.Spec) error {
		m, err := reg.Load(new.Image)
		if err != nil {
			return &vm.FieldError{Field: "image", Msg: err.Error()}
		}
		own := new.Cmdline
		if old.Image != "" {
			if om, err := reg.Load(old.Image); err == nil && om.Cmdline != "" {
				own = strings.TrimSpace(strings.TrimPrefix(own, om.Cmdline))
			}
		}
		if new.Kernel, new.Initrd, err = reg.BootFiles(new.Image); err != nil {
			return &vm.FieldError{Field: "image", Msg: err.Error()}
		}
		new.Cmdline = strings.TrimSpace(m.Cmdline + " " + own)
		return nil
	}
}
