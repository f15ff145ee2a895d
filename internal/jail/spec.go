package jail

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Spec is everything the jail side needs; it travels as JSON from the
// daemon to `bulwark jail-exec`.
type Spec struct {
	// Name appears in errors and, cut to 64 bytes (HOST_NAME_MAX), is the
	// hostname inside the jail.
	Name string `json:"name"`
	// Root is a host directory the jail's private tmpfs root is mounted
	// on. It only serves as a mount point inside the jail's own mount
	// namespace, so one root-owned directory serves every jail.
	Root string `json:"root"`
	// Path is the program to exec, at the same path inside the jail as on
	// the host; it must also be bound (Binds).
	Path string   `json:"path"`
	Args []string `json:"args"` // argv, including argv[0]
	Env  []string `json:"env"`
	// Binds are host files or directories mounted read-only (unless
	// Writable) at the same path inside the jail.
	Binds []Bind `json:"binds"`
	// Symlinks are recreated inside the jail (the host's /lib -> usr/lib
	// on a merged-/usr system), so paths the program was built with
	// resolve.
	Symlinks []Symlink `json:"symlinks,omitempty"`
	// Proc mounts a /proc of the jail's own PID namespace with
	// hidepid=invisible,subset=pid (QEMU opens /proc/self/fd/N).
	Proc bool `json:"proc"`
	// UID and GID the program runs as; never 0.
	UID int `json:"uid"`
	GID int `json:"gid"`
	// Rlimits are applied before the program starts.
	Rlimits Rlimits `json:"rlimits"`
	// Seccomp names the allow list (internal/jail/seccomp) installed
	// before execve; "" is refused: every jailed program gets one.
	Seccomp string `json:"seccomp"`
	// NFiles is how many payload descriptors the program receives; they
	// are descriptors 3..3+NFiles-1 in the program, in the order given to
	// Start.
	NFiles int `json:"nfiles"`
}

// Bind is one host path mounted inside the jail at the same path.
type Bind struct {
	Path     string `json:"path"`
	Dir      bool   `json:"dir,omitempty"`
	Writable bool   `json:"writable,omitempty"`
	Exec     bool   `json:"exec,omitempty"`   // programs and shared libraries
	Device   bool   `json:"device,omitempty"` // device nodes keep working (no nodev)
}

// Symlink is a symbolic link created inside the jail.
type Symlink struct {
	Path   string `json:"path"`
	Target string `json:"target"`
}

// Rlimits are soft and hard limits at once; 0 leaves a limit as inherited
// except Core, which is always 0 (a crashing VMM must not write guest
// memory into a core file).
type Rlimits struct {
	NoFile uint64 `json:"nofile"`
	NProc  uint64 `json:"nproc"`
	FSize  uint64 `json:"fsize"` // bytes
}

// Limits of the Spec itself: it is read by a root process.
const (
	maxSpecBytes = 1 << 20
	maxBinds     = 1024
	maxArgs      = 4096
	maxFiles     = 256
)

// Validate checks a Spec before it is used; the jail side checks again.
func (s *Spec) Validate() error {
	if s.Name == "" || len(s.Name) > 255 || strings.ContainsAny(s.Name, "/\x00") {
		return fmt.Errorf("jail: bad name %q", s.Name)
	}
	for _, p := range []string{s.Root, s.Path} {
		if err := cleanAbs(p); err != nil {
			return err
		}
	}
	if s.Root == "/" {
		return errors.New("jail: root must not be /")
	}
	if len(s.Args) == 0 || len(s.Args) > maxArgs {
		return fmt.Errorf("jail: %d arguments", len(s.Args))
	}
	if s.UID <= 0 || s.GID <= 0 {
		return fmt.Errorf("jail: uid %d gid %d: a jailed program never runs as root", s.UID, s.GID)
	}
	if s.Seccomp == "" {
		return errors.New("jail: no seccomp filter named")
	}
	if s.NFiles < 0 || s.NFiles > maxFiles {
		return fmt.Errorf("jail: %d payload files", s.NFiles)
	}
	if len(s.Binds) > maxBinds {
		return fmt.Errorf("jail: %d binds", len(s.Binds))
	}
	bound := false
	for _, b := range s.Binds {
		if err := cleanAbs(b.Path); err != nil {
			return err
		}
		if b.Path == "/" || b.Path == "/proc" || strings.HasPrefix(b.Path, "/proc/") {
			return fmt.Errorf("jail: bind %s is not allowed", b.Path)
		}
		bound = bound || b.Path == s.Path
	}
	if !bound {
		return fmt.Errorf("jail: program %s is not bound into the jail", s.Path)
	}
	for _, l := range s.Symlinks {
		if err := cleanAbs(l.Path); err != nil {
			return err
		}
		if l.Target == "" || filepath.IsAbs(l.Target) || strings.Contains(l.Target, "..") {
			return fmt.Errorf("jail: symlink %s -> %q: target must be relative and stay below /", l.Path, l.Target)
		}
	}
	return nil
}

func cleanAbs(p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) || len(p) > 4096 {
		return fmt.Errorf("jail: path %q must be clean and absolute", p)
	}
	return nil
}
