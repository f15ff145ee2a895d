package safefs

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDialUnix: a real socket inside is reached; a symlink at the name or
// in a middle component, pointing at a real listening socket outside, is
// refused without the outside listener seeing a connection.
func TestDialUnix(t *testing.T) {
	forEachResolver(t, func(t *testing.T) {
		fx := newFixture(t)
		outsideSock := filepath.Join(fx.outside, "real.sock")
		outLn, err := net.Listen("unix", outsideSock)
		must(t, err)
		defer outLn.Close()
		must(t, os.Symlink(outsideSock, filepath.Join(fx.root, "evil.sock")))

		ln, err := fx.d.ListenUnix("good.sock", 0o600)
		must(t, err)
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.Write([]byte("hello from inside"))
		}()

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := fx.d.DialUnix(ctx, "good.sock")
		must(t, err)
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		c.Close()
		if err != nil || string(buf[:n]) != "hello from inside" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}

		tests := []struct {
			name    string
			wantErr error
		}{
			{"evil.sock", ErrSymlink},
			{"dirlnk/real.sock", ErrSymlink},
			{"sub/up/evil.sock", ErrSymlink},
			{"a", ErrNotSocket},
			{"fifo", ErrNotSocket},
			{"missing.sock", fs.ErrNotExist},
			{"../outside/real.sock", ErrInvalidName},
		}
		for _, tt := range tests {
			if c, err := fx.d.DialUnix(ctx, tt.name); !errors.Is(err, tt.wantErr) {
				if c != nil {
					c.Close()
				}
				t.Errorf("DialUnix(%q) = %v, want %v", tt.name, err, tt.wantErr)
			}
		}
		outLn.(*net.UnixListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
		if c, err := outLn.Accept(); err == nil {
			c.Close()
			t.Fatal("the outside socket was connected to")
		}
	})
}

// TestListenUnixMode: the socket file has exactly the requested mode,
// whatever the process umask, and the process umask is left alone.
func TestListenUnixMode(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	fx := newFixture(t)
	for i, perm := range []os.FileMode{0o600, 0o660, 0o666, 0o700} {
		name := filepath.Join("sub", "s"+string(rune('0'+i)))
		ln, err := fx.d.ListenUnix(name, perm)
		must(t, err)
		fi, err := os.Lstat(filepath.Join(fx.root, name))
		must(t, err)
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != perm {
			t.Errorf("%s: mode %v, want socket %v", name, fi.Mode(), perm)
		}
		ln.Close()
		// Closing does not remove the file (nor anything by a relative
		// name in the daemon's working directory).
		if _, err := os.Lstat(filepath.Join(fx.root, name)); err != nil {
			t.Errorf("%s gone after Close: %v", name, err)
		}
	}
	if got := unix.Umask(0o022); got != 0o022 {
		t.Errorf("process umask changed to %o", got)
	}
}

func TestListenUnixName(t *testing.T) {
	tests := []struct {
		desc    string
		name    string
		wantErr error
	}{
		{"stale socket replaced", "stale.sock", nil},
		{"regular file kept", "a", fs.ErrExist},
		{"symlink kept", "lnk", fs.ErrExist},
		{"dangling symlink kept", "dangling", fs.ErrExist},
		{"FIFO kept", "fifo", fs.ErrExist},
		{"below a symlinked directory", "dirlnk/x.sock", ErrSymlink},
		{"escape", "../outside/x.sock", ErrInvalidName},
		{"longer than sun_path", strings.Repeat("s", maxSunPath+1), ErrInvalidName},
	}
	for _, gram := range []bool{false, true} {
		forEachResolver(t, func(t *testing.T) {
			for _, tt := range tests {
				fx := newFixture(t)
				stale, err := net.Listen("unix", filepath.Join(fx.root, "stale.sock"))
				must(t, err)
				stale.(*net.UnixListener).SetUnlinkOnClose(false)
				stale.Close()
				before, _ := os.Lstat(filepath.Join(fx.root, tt.name))
				if gram {
					var c *net.UnixConn
					if c, err = fx.d.ListenUnixgram(tt.name, 0o600); c != nil {
						c.Close()
					}
				} else {
					var ln *net.UnixListener
					if ln, err = fx.d.ListenUnix(tt.name, 0o600); ln != nil {
						ln.Close()
					}
				}
				fx.checkOutside(t)
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("gram=%v %s: err %v, want %v", gram, tt.desc, err, tt.wantErr)
					continue
				}
				if err != nil && before != nil {
					after, aerr := os.Lstat(filepath.Join(fx.root, tt.name))
					if aerr != nil || !os.SameFile(before, after) {
						t.Errorf("%s: refused listen replaced %s", tt.desc, tt.name)
					}
				}
			}
		})
	}
}

func TestListenUnixgram(t *testing.T) {
	fx := newFixture(t)
	conn, err := fx.d.ListenUnixgram("port.sock", 0o600)
	must(t, err)
	defer conn.Close()
	fi, err := os.Lstat(filepath.Join(fx.root, "port.sock"))
	must(t, err)
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	peer, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: filepath.Join(fx.root, "port.sock"), Net: "unixgram"})
	must(t, err)
	defer peer.Close()
	_, err = peer.Write([]byte("frame"))
	must(t, err)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "frame" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	// The socket can then be handed to the VM's uid.
	if os.Geteuid() == 0 {
		must(t, fx.d.Chown("port.sock", 4242, 4242))
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(fx.root, "port.sock"), &st))
		if st.Uid != 4242 {
			t.Fatalf("owner %d", st.Uid)
		}
	}
}
