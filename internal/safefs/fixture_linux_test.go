package safefs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// secretText stands for the contents of a host file such as /etc/shadow.
const secretText = "root:$6$host-secret:19000:0:99999:7:::\n"

// fixture is a directory a VM's uid could write (root), with the traps such
// a uid could plant, next to a directory standing for the rest of the host
// (outside) that must never be touched through root.
type fixture struct {
	base    string // parent of root and outside
	root    string
	outside string
	secret  string // outside/shadow
	d       *Dir
}

// newFixture builds:
//
//	root/a                 regular file "inside"
//	root/sub/b             regular file "b"
//	root/empty/            empty directory
//	root/lnk     -> outside/shadow (absolute)
//	root/rel     -> ../outside/shadow
//	root/dirlnk  -> outside (absolute)
//	root/sub/up  -> ..
//	root/dangling -> outside/new (does not exist)
//	root/fifo              FIFO
//	root/hard              hard link to outside/shadow
//	outside/shadow         the secret, mode 0600
func newFixture(t testing.TB) *fixture {
	t.Helper()
	base := t.TempDir()
	fx := &fixture{
		base:    base,
		root:    filepath.Join(base, "root"),
		outside: filepath.Join(base, "outside"),
	}
	fx.secret = filepath.Join(fx.outside, "shadow")
	must(t, os.Mkdir(fx.root, 0o755))
	must(t, os.Mkdir(fx.outside, 0o755))
	must(t, os.WriteFile(fx.secret, []byte(secretText), 0o600))
	must(t, os.WriteFile(filepath.Join(fx.root, "a"), []byte("inside"), 0o644))
	must(t, os.Mkdir(filepath.Join(fx.root, "sub"), 0o755))
	must(t, os.Mkdir(filepath.Join(fx.root, "empty"), 0o755))
	must(t, os.WriteFile(filepath.Join(fx.root, "sub", "b"), []byte("b"), 0o644))
	must(t, os.Symlink(fx.secret, filepath.Join(fx.root, "lnk")))
	must(t, os.Symlink("../outside/shadow", filepath.Join(fx.root, "rel")))
	must(t, os.Symlink(fx.outside, filepath.Join(fx.root, "dirlnk")))
	must(t, os.Symlink("..", filepath.Join(fx.root, "sub", "up")))
	must(t, os.Symlink(filepath.Join(fx.outside, "new"), filepath.Join(fx.root, "dangling")))
	must(t, unix.Mkfifo(filepath.Join(fx.root, "fifo"), 0o600))
	must(t, os.Link(fx.secret, filepath.Join(fx.root, "hard")))
	d, err := OpenDir(fx.root)
	must(t, err)
	t.Cleanup(func() { d.Close() })
	fx.d = d
	return fx
}

// checkOutside fails the test if anything outside root changed: the
// secret's contents, owner and mode, and the set of names in outside.
func (fx *fixture) checkOutside(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(fx.secret)
	if err != nil || string(b) != secretText {
		t.Fatalf("secret changed: %q, %v", b, err)
	}
	var st unix.Stat_t
	must(t, unix.Stat(fx.secret, &st))
	if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() || st.Mode&0o7777 != 0o600 {
		t.Fatalf("secret metadata changed: uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	ents, err := os.ReadDir(fx.outside)
	must(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, ","); got != "shadow" {
		t.Fatalf("outside directory changed: %s", got)
	}
}

// forEachResolver runs fn once with openat2 and once with the component
// walk used on kernels without it.
func forEachResolver(t *testing.T, fn func(t *testing.T)) {
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			noOpenat2.Store(walk)
			t.Cleanup(func() { noOpenat2.Store(false) })
			fn(t)
		})
	}
}

// withinDeadline fails the test if fn blocks, as an open of a FIFO
// without O_NONBLOCK would.
func withinDeadline(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("call blocked")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tests chown files and create hard links to root-owned files")
	}
}
