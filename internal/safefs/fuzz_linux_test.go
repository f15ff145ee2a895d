package safefs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzOpenName checks that no name, however odd, makes Open, OpenDir or
// Stat reach anything outside the directory, or makes Open with O_CREATE
// create anything outside it, with openat2 or with the component walk.
//
//	go test ./internal/safefs -run '^$' -fuzz FuzzOpenName -fuzztime 30s
func FuzzOpenName(f *testing.F) {
	for _, s := range []string{
		"a", "sub/b", "sub", "lnk", "rel", "dirlnk/shadow", "sub/up/a",
		"sub/up/sub/up/a", "../outside/shadow", "sub/../../outside/shadow",
		"/etc/passwd", "", ".", "./a", "a/", "a//b", "dangling", "fifo", "hard",
		"sub/up", "dirlnk", "\x00", "sub/up/..", "...",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	fx := newFixture(f)
	var secretID unix.Stat_t
	must(f, unix.Stat(fx.secret, &secretID))

	// inside fails the test unless fd is root or a file below it that is
	// not the secret.
	inside := func(t *testing.T, name string, fd uintptr) {
		t.Helper()
		p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
		must(t, err)
		if p != fx.root && !strings.HasPrefix(p, fx.root+"/") {
			t.Fatalf("name %q resolved to %s, outside %s", name, p, fx.root)
		}
		var st unix.Stat_t
		must(t, unix.Fstat(int(fd), &st))
		if st.Dev == secretID.Dev && st.Ino == secretID.Ino {
			t.Fatalf("name %q reached the secret", name)
		}
		if checkName(name) != nil {
			t.Fatalf("name %q failed checkName but was opened", name)
		}
		for c := range strings.SplitSeq(name, "/") {
			if c == ".." || c == "." || c == "" {
				t.Fatalf("name %q with component %q was opened", name, c)
			}
		}
	}

	f.Fuzz(func(t *testing.T, name string, walk bool) {
		noOpenat2.Store(walk)
		defer noOpenat2.Store(false)

		if file, err := fx.d.Open(name, os.O_RDONLY, 0); err == nil {
			inside(t, name, file.Fd())
			file.Close()
		}
		if sub, err := fx.d.OpenDir(name); err == nil {
			rc, err := sub.f.SyscallConn()
			must(t, err)
			rc.Control(func(fd uintptr) { inside(t, name, fd) })
			sub.Close()
		}
		if fi, err := fx.d.Stat(name); err == nil {
			if fi.Name() != filepath.Base(name) {
				t.Fatalf("Stat(%q).Name() = %q", name, fi.Name())
			}
			if checkName(name) != nil {
				t.Fatalf("name %q failed checkName but Stat succeeded", name)
			}
		}
		if file, err := fx.d.Open(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			inside(t, name, file.Fd())
			file.Close()
			must(t, fx.d.Remove(name))
		}
		fx.checkOutside(t)
	})
}
