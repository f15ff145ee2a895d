package monitor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func pair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "s")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return mk(fds[0]), mk(fds[1])
}

func TestRequestWithDescriptors(t *testing.T) {
	a, b := pair(t)
	defer a.Close()
	path := filepath.Join(t.TempDir(), "ram")
	os.WriteFile(path, []byte("guest memory"), 0o600)
	go Serve(b, func(req Request, files []*os.File) (any, error) {
		defer func() {
			for _, f := range files {
				f.Close()
			}
		}()
		buf := make([]byte, 5)
		files[0].ReadAt(buf, 6)
		// The descriptor is read-only: writing through it fails.
		_, werr := files[0].WriteAt([]byte("x"), 0)
		if req.Op == "panic" {
			panic("boom")
		}
		return map[string]any{"vm": req.VM, "read": string(buf), "write_refused": werr != nil}, nil
	})
	p := &Process{conn: a}
	f, _ := os.Open(path)
	defer f.Close()
	var out map[string]any
	if err := p.Call(context.Background(), Request{Op: "ps", VM: "web"}, []*os.File{f}, &out); err != nil {
		t.Fatal(err)
	}
	if out["vm"] != "web" || out["read"] != "memor" || out["write_refused"] != true {
		t.Fatalf("%v", out)
	}
	if err := p.Call(context.Background(), Request{Op: "panic"}, []*os.File{f}, &out); err == nil {
		t.Fatal("panic not reported")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, y := pair(t)
		defer x.Close()
		defer y.Close()
		go func() { x.Write(b); x.CloseWrite() }()
		body, _, err := readFrame(y, 1024)
		if err == nil && len(body) > 1024 {
			t.Fatal("limit exceeded")
		}
	})
}
