package safefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// plantTree builds root/victim with files, nested directories, a FIFO, a
// symlink to the outside directory, a symlink to the secret, a hard link to
// the secret and a symlink to "..".
func plantTree(t *testing.T, fx *fixture) {
	t.Helper()
	v := filepath.Join(fx.root, "victim")
	must(t, os.MkdirAll(filepath.Join(v, "sub", "deep"), 0o755))
	must(t, os.WriteFile(filepath.Join(v, "f1"), []byte("1"), 0o644))
	must(t, os.WriteFile(filepath.Join(v, "sub", "f2"), []byte("2"), 0o644))
	must(t, os.WriteFile(filepath.Join(v, "sub", "deep", "f3"), []byte("3"), 0o644))
	must(t, os.Symlink(fx.outside, filepath.Join(v, "out")))
	must(t, os.Symlink(fx.outside, filepath.Join(v, "sub", "deep", "out")))
	must(t, os.Symlink(fx.secret, filepath.Join(v, "sub", "shadowlnk")))
	must(t, os.Symlink("..", filepath.Join(v, "sub", "up")))
	must(t, os.Link(fx.secret, filepath.Join(v, "sub", "hard")))
	must(t, unix.Mkfifo(filepath.Join(v, "fifo"), 0o600))
}

func TestRemoveAll(t *testing.T) {
	forEachResolver(t, func(t *testing.T) {
		fx := newFixture(t)
		plantTree(t, fx)
		must(t, fx.d.RemoveAll("victim"))
		fx.checkOutside(t)
		if _, err := os.Lstat(filepath.Join(fx.root, "victim")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("victim still there: %v", err)
		}
		// Only the names planted in root by the fixture are left.
		for _, n := range []string{"a", "sub/b", "lnk", "dirlnk", "hard"} {
			if _, err := os.Lstat(filepath.Join(fx.root, n)); err != nil {
				t.Errorf("%s: %v", n, err)
			}
		}
		var st unix.Stat_t
		must(t, unix.Stat(fx.secret, &st))
		if st.Nlink != 2 { // outside/shadow and root/hard
			t.Errorf("secret has %d links", st.Nlink)
		}
	})
}

func TestRemoveAllNames(t *testing.T) {
	tests := []struct {
		name    string
		wantErr error
		gone    bool // name no longer exists afterwards
	}{
		{"missing", nil, true},
		{"missing/below", nil, true},
		{"dirlnk", nil, true}, // the link, not the directory it names
		{"lnk", nil, true},
		{"a", nil, true},
		{"sub", nil, true},
		{"dirlnk/shadow", ErrSymlink, false},
		{"sub/up/a", ErrSymlink, false},
		{"../outside", ErrInvalidName, false},
		{"/", ErrInvalidName, false},
		{"", ErrInvalidName, false},
	}
	forEachResolver(t, func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fx := newFixture(t)
				err := fx.d.RemoveAll(tt.name)
				fx.checkOutside(t)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("RemoveAll(%q) = %v, want %v", tt.name, err, tt.wantErr)
				}
				if tt.gone {
					if _, err := os.Lstat(filepath.Join(fx.root, tt.name)); !errors.Is(err, fs.ErrNotExist) {
						t.Fatalf("%s still there: %v", tt.name, err)
					}
				}
			})
		}
	})
}

func TestRemoveAllManyEntries(t *testing.T) {
	fx := newFixture(t)
	v := filepath.Join(fx.root, "victim")
	must(t, os.Mkdir(v, 0o755))
	for i := range 3*removeBatch + 7 {
		must(t, os.WriteFile(filepath.Join(v, fmt.Sprint(i)), nil, 0o644))
	}
	must(t, fx.d.RemoveAll("victim"))
	if _, err := os.Lstat(v); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("victim still there: %v", err)
	}
}

func TestRemoveAllLimits(t *testing.T) {
	defer func(d, e int) { removeMaxDepth, removeMaxEntries = d, e }(removeMaxDepth, removeMaxEntries)
	removeMaxDepth, removeMaxEntries = 4, 10
	fx := newFixture(t)

	deep := filepath.Join(fx.root, "deep", strings.Repeat("d/", 5))
	must(t, os.MkdirAll(deep, 0o755))
	if err := fx.d.RemoveAll("deep"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("RemoveAll(deep) = %v, want ErrTooLarge", err)
	}
	wide := filepath.Join(fx.root, "wide")
	must(t, os.Mkdir(wide, 0o755))
	for i := range 20 {
		must(t, os.WriteFile(filepath.Join(wide, fmt.Sprint(i)), nil, 0o644))
	}
	if err := fx.d.RemoveAll("wide"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("RemoveAll(wide) = %v, want ErrTooLarge", err)
	}
	fx.checkOutside(t)
}

// TestRemoveAllMountPoint: a file system mounted below the tree is not
// emptied.
func TestRemoveAllMountPoint(t *testing.T) {
	requireRoot(t)
	forEachResolver(t, func(t *testing.T) {
		fx := newFixture(t)
		mnt := filepath.Join(fx.root, "victim", "mnt")
		must(t, os.MkdirAll(mnt, 0o755))
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
			t.Skipf("cannot mount tmpfs: %v", err)
		}
		defer unix.Unmount(mnt, unix.MNT_DETACH)
		keep := filepath.Join(mnt, "keep")
		must(t, os.WriteFile(keep, []byte("k"), 0o644))
		if err := fx.d.RemoveAll("victim"); !errors.Is(err, ErrCrossesMount) {
			t.Fatalf("RemoveAll = %v, want ErrCrossesMount", err)
		}
		if _, err := os.Stat(keep); err != nil {
			t.Fatalf("file on the mounted file system removed: %v", err)
		}
	})
}
