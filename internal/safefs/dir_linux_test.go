package safefs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenat2Available(t *testing.T) {
	fd, err := unix.Openat2(unix.AT_FDCWD, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveFlags})
	if err == unix.ENOSYS {
		t.Skip("no openat2 on this kernel: the openat2 subtests run the walk too")
	}
	must(t, err)
	unix.Close(fd)
}

func TestOpen(t *testing.T) {
	const (
		rd     = os.O_RDONLY
		create = os.O_WRONLY | os.O_CREATE | os.O_EXCL
		trunc  = os.O_WRONLY | os.O_TRUNC
	)
	tests := []struct {
		desc    string
		name    string
		flag    int
		wantErr error  // nil: success
		want    string // contents after the call, for successful opens of root/a or new files
	}{
		{"file", "a", rd, nil, "inside"},
		{"nested file", "sub/b", rd, nil, "b"},
		{"directory", "sub", rd, nil, ""},
		{"symlink at the name, absolute", "lnk", rd, ErrSymlink, ""},
		{"symlink at the name, relative outside", "rel", rd, ErrSymlink, ""},
		{"symlink in a middle component", "dirlnk/shadow", rd, ErrSymlink, ""},
		{"symlink to .. in a middle component", "sub/up/a", rd, ErrSymlink, ""},
		{"dot-dot escape", "../outside/shadow", rd, ErrInvalidName, ""},
		{"dot-dot escape after a component", "sub/../../outside/shadow", rd, ErrInvalidName, ""},
		{"absolute name", "/etc/passwd", rd, ErrInvalidName, ""},
		{"empty name", "", rd, ErrInvalidName, ""},
		{"dot component", "./a", rd, ErrInvalidName, ""},
		{"trailing slash", "a/", rd, ErrInvalidName, ""},
		{"create through a dangling symlink", "dangling", create, fs.ErrExist, ""}, // O_EXCL: the link is an entry
		{"create through a dangling symlink without O_EXCL", "dangling", os.O_WRONLY | os.O_CREATE, ErrSymlink, ""},
		{"create below a symlinked directory", "dirlnk/new", create, ErrSymlink, ""},
		{"truncate through a symlink", "lnk", trunc, ErrSymlink, ""},
		{"truncate a hard link to a host file", "hard", trunc, ErrHardlink, ""},
		{"read a hard link to a host file", "hard", rd, ErrHardlink, ""},
		{"FIFO for reading", "fifo", rd, ErrNotRegular, ""},
		{"FIFO for writing", "fifo", os.O_WRONLY, syscall.ENXIO, ""}, // no reader: refused by the non-blocking open itself
		{"FIFO for reading and writing", "fifo", os.O_RDWR, ErrNotRegular, ""},
		{"create a new file", "new", create, nil, ""},
		{"create in a subdirectory", "sub/new", create, nil, ""},
		{"truncate a file", "a", trunc, nil, ""},
		{"O_PATH", "a", unix.O_PATH, syscall.EINVAL, ""},
	}
	forEachResolver(t, func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.desc, func(t *testing.T) {
				fx := newFixture(t)
				var f *os.File
				var err error
				withinDeadline(t, func() { f, err = fx.d.Open(tt.name, tt.flag, 0o600) })
				fx.checkOutside(t)
				if tt.wantErr != nil {
					if f != nil {
						f.Close()
					}
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("Open(%q) = %v, want %v", tt.name, err, tt.wantErr)
					}
					var pe *fs.PathError
					if !errors.As(err, &pe) || pe.Path != fx.root+"/"+tt.name {
						t.Errorf("error %v does not name the full path", err)
					}
					return
				}
				must(t, err)
				defer f.Close()
				if fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
					t.Errorf("flags %#x, %v: O_NONBLOCK left set", fl, err)
				}
				if fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
					t.Errorf("FD_CLOEXEC not set: %#x, %v", fl, err)
				}
				if tt.flag == rd && tt.want != "" {
					b, err := io.ReadAll(f)
					if err != nil || string(b) != tt.want {
						t.Errorf("read %q, %v; want %q", b, err, tt.want)
					}
				}
				if tt.flag == trunc || tt.flag == create {
					fi, err := os.Lstat(filepath.Join(fx.root, tt.name))
					must(t, err)
					if fi.Size() != 0 || !fi.Mode().IsRegular() {
						t.Errorf("%s: size %d mode %v after open", tt.name, fi.Size(), fi.Mode())
					}
					if tt.flag == create && fi.Mode().Perm() != 0o600&^umask() {
						t.Errorf("mode %v, want %v", fi.Mode().Perm(), os.FileMode(0o600&^umask()))
					}
				}
			})
		}
	})
}

func umask() os.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return os.FileMode(m)
}

func TestOpenDirPath(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		desc    string
		path    string
		wantErr error
	}{
		{"directory", fx.root, nil},
		{"symlink to a directory", filepath.Join(fx.root, "dirlnk"), ErrSymlink},
		{"relative", "root", ErrInvalidName},
		{"regular file", filepath.Join(fx.root, "a"), syscall.ENOTDIR},
		{"missing", filepath.Join(fx.root, "missing"), fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			d, err := OpenDir(tt.path)
			if tt.wantErr == nil {
				must(t, err)
				if d.Path() != tt.path {
					t.Errorf("Path() = %q", d.Path())
				}
				must(t, d.Close())
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("OpenDir(%q) = %v, want %v", tt.path, err, tt.wantErr)
			}
		})
	}
}

func TestDirOpenDir(t *testing.T) {
	forEachResolver(t, func(t *testing.T) {
		fx := newFixture(t)
		if _, err := fx.d.OpenDir("dirlnk"); !errors.Is(err, ErrSymlink) {
			t.Fatalf("OpenDir(dirlnk) = %v, want ErrSymlink", err)
		}
		if _, err := fx.d.OpenDir("a"); !errors.Is(err, syscall.ENOTDIR) {
			t.Fatalf("OpenDir(a) = %v, want ENOTDIR", err)
		}
		sub, err := fx.d.OpenDir("sub")
		must(t, err)
		defer sub.Close()
		if sub.Path() != fx.root+"/sub" {
			t.Errorf("Path() = %q", sub.Path())
		}
		b, err := sub.ReadFileCapped("b", 10)
		if err != nil || string(b) != "b" {
			t.Fatalf("sub.ReadFileCapped(b) = %q, %v", b, err)
		}
		// The ".." a symlink would reach is refused below sub as well.
		if _, err := sub.Open("up/a", os.O_RDONLY, 0); !errors.Is(err, ErrSymlink) {
			t.Fatalf("sub.Open(up/a) = %v, want ErrSymlink", err)
		}
	})
}

// TestDirSurvivesRename: the Dir is a descriptor, so replacing its path by
// a symlink to the host afterwards changes nothing.
func TestDirSurvivesRename(t *testing.T) {
	fx := newFixture(t)
	must(t, os.Rename(fx.root, fx.root+".moved"))
	must(t, os.Symlink(fx.outside, fx.root))
	b, err := fx.d.ReadFileCapped("a", 100)
	if err != nil || string(b) != "inside" {
		t.Fatalf("ReadFileCapped(a) = %q, %v", b, err)
	}
	if _, err := fx.d.ReadFileCapped("shadow", 100); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFileCapped(shadow) = %v, want not exist", err)
	}
}

func TestClosed(t *testing.T) {
	fx := newFixture(t)
	must(t, fx.d.Close())
	if _, err := fx.d.Open("a", os.O_RDONLY, 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Open after Close = %v, want os.ErrClosed", err)
	}
}

func TestStat(t *testing.T) {
	forEachResolver(t, func(t *testing.T) {
		fx := newFixture(t)
		tests := []struct {
			name     string
			wantErr  error
			wantMode fs.FileMode // type bits
		}{
			{"a", nil, 0},
			{"sub", nil, fs.ModeDir},
			{"lnk", nil, fs.ModeSymlink},
			{"sub/up", nil, fs.ModeSymlink},
			{"fifo", nil, fs.ModeNamedPipe},
			{"dirlnk/shadow", ErrSymlink, 0},
			{"../outside", ErrInvalidName, 0},
			{"missing", fs.ErrNotExist, 0},
		}
		for _, tt := range tests {
			fi, err := fx.d.Stat(tt.name)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Stat(%q) = %v, want %v", tt.name, err, tt.wantErr)
				}
				continue
			}
			if err != nil {
				t.Errorf("Stat(%q): %v", tt.name, err)
				continue
			}
			if fi.Mode().Type() != tt.wantMode || fi.Name() != filepath.Base(tt.name) {
				t.Errorf("Stat(%q) = %s %v", tt.name, fi.Name(), fi.Mode())
			}
		}
		if fi, err := fx.d.Stat("a"); err != nil || fi.Size() != int64(len("inside")) {
			t.Errorf("Stat(a) size = %v, %v", fi, err)
		}
	})
}

func TestChown(t *testing.T) {
	requireRoot(t)
	const id = 4242
	tests := []struct {
		name    string
		wantErr error
	}{
		{"a", nil},
		{"sub", nil},
		{"sub/b", nil},
		{"fifo", nil},
		{"lnk", ErrSymlink},
		{"dangling", ErrSymlink},
		{"dirlnk/shadow", ErrSymlink},
		{"sub/up/a", ErrSymlink},
		{"hard", ErrHardlink},
		{"../outside/shadow", ErrInvalidName},
	}
	forEachResolver(t, func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fx := newFixture(t)
				before := lstatOwner(t, filepath.Join(fx.root, tt.name))
				err := fx.d.Chown(tt.name, id, id)
				fx.checkOutside(t)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("Chown(%q) = %v, want %v", tt.name, err, tt.wantErr)
					}
					if after := lstatOwner(t, filepath.Join(fx.root, tt.name)); after != before {
						t.Fatalf("refused Chown changed the owner of %s from %d to %d", tt.name, before, after)
					}
					return
				}
				must(t, err)
				if got := lstatOwner(t, filepath.Join(fx.root, tt.name)); got != id {
					t.Fatalf("owner %d, want %d", got, id)
				}
			})
		}
	})
}

// lstatOwner is the uid of path itself, or -1 when path cannot be
// examined (a name below a symlink, outside root).
func lstatOwner(t *testing.T, path string) int {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil {
		return -1
	}
	return int(st.Uid)
}

func TestChmod(t *testing.T) {
	forEachResolver(t, func(t *testing.T) {
		fx := newFixture(t)
		for _, name := range []string{"lnk", "dirlnk/shadow", "hard"} {
			if err := fx.d.Chmod(name, 0o666); err == nil {
				t.Errorf("Chmod(%q) succeeded", name)
			}
		}
		fx.checkOutside(t)
		must(t, fx.d.Chmod("a", 0o640))
		must(t, fx.d.Chmod("sub", 0o700))
		for name, want := range map[string]fs.FileMode{"a": 0o640, "sub": 0o700} {
			fi, err := os.Lstat(filepath.Join(fx.root, name))
			must(t, err)
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
			}
		}
	})
}

func TestMkdir(t *testing.T) {
	forEachResolver(t, func(t *testing.T) {
		fx := newFixture(t)
		if err := fx.d.Mkdir("dirlnk/x", 0o700); !errors.Is(err, ErrSymlink) {
			t.Errorf("Mkdir(dirlnk/x) = %v, want ErrSymlink", err)
		}
		if err := fx.d.Mkdir("dangling", 0o700); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Mkdir(dangling) = %v, want exist", err)
		}
		fx.checkOutside(t)
		must(t, fx.d.Mkdir("sub/c", 0o700))
		fi, err := os.Lstat(filepath.Join(fx.root, "sub", "c"))
		must(t, err)
		if !fi.IsDir() || fi.Mode().Perm() != 0o700&^umask() {
			t.Errorf("sub/c: %v", fi.Mode())
		}
	})
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name    string
		wantErr error
	}{
		{"a", nil},
		{"empty", nil},
		{"lnk", nil}, // the link goes, the secret stays
		{"dirlnk", nil},
		{"hard", nil},
		{"fifo", nil},
		{"sub", syscall.ENOTEMPTY},
		{"dirlnk/shadow", ErrSymlink},
		{"sub/up/a", ErrSymlink},
		{"../outside/shadow", ErrInvalidName},
		{"missing", fs.ErrNotExist},
	}
	forEachResolver(t, func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fx := newFixture(t)
				err := fx.d.Remove(tt.name)
				fx.checkOutside(t)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Remove(%q) = %v, want %v", tt.name, err, tt.wantErr)
				}
				if _, lerr := os.Lstat(filepath.Join(fx.root, tt.name)); err == nil && !errors.Is(lerr, fs.ErrNotExist) {
					t.Fatalf("%s still there: %v", tt.name, lerr)
				}
			})
		}
	})
}

func TestRename(t *testing.T) {
	tests := []struct {
		from, to string
		wantErr  error
	}{
		{"a", "sub/a2", nil},
		{"a", "lnk", nil}, // replaces the link, not the secret
		{"lnk", "lnk2", nil},
		{"a", "dirlnk/a", ErrSymlink},
		{"dirlnk/shadow", "stolen", ErrSymlink},
		{"a", "../outside/a", ErrInvalidName},
	}
	forEachResolver(t, func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
				fx := newFixture(t)
				err := fx.d.Rename(tt.from, tt.to)
				fx.checkOutside(t)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Rename = %v, want %v", err, tt.wantErr)
				}
			})
		}
	})
}
