package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/console"
	"github.com/bulwark-project/bulwark/internal/consolelog"
)

// benchPolicy is the default policy with the clipboard allowed, so the
// paste filter does not refuse keystrokes sent at machine speed. The
// deny-path filter is measured by BenchmarkInputFilter* in this directory.
func benchPolicy() console.Policy {
	pol := console.DefaultPolicy()
	pol.Clipboard = true
	pol.Input.Clipboard = true
	return pol
}

// apiServer is an http.Server on a Unix socket, configured as the daemon's
// API socket is (api.NewHTTPServer), whose one route serves consoles with
// api.ServeConsoleWS, the daemon's console data path, minus authentication.
type apiServer struct {
	sock string
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startAPI(sock string, b *console.Broker) (*apiServer, error) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	pol := benchPolicy()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/vms/{name}/console", func(w http.ResponseWriter, r *http.Request) {
		api.ServeConsoleWS(w, r, b, console.OpenRequest{VM: r.PathValue("name"), User: "bench", Source: "bench",
			Client: "cli", Policy: pol})
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := &apiServer{sock: sock, srv: api.NewHTTPServer(mux, log), ln: ln, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.srv.Serve(ln)
	}()
	return a, nil
}

// Close stops the listener and drops the connections it still tracks
// (hijacked WebSocket connections are the handlers' to end).
func (a *apiServer) Close() {
	a.srv.Close()
	<-a.done
}

// echoServer stands in for the guest's tty behind QEMU's serial chardev: a
// Unix stream socket that writes back every byte it reads, at once.
type echoServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startEcho(sock string) (*echoServer, error) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return e, nil
}

func (e *echoServer) Close() {
	e.ln.Close()
	e.mu.Lock()
	for _, c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// serialInput is the manager's console.Input: keystrokes go to the VM's
// serial socket connection, with a write deadline
// (manager.Manager.ConsoleWrite).
type serialInput struct {
	mu    sync.Mutex
	conns map[string]net.Conn
}

var errNoConsole = errors.New("no console connection")

const consoleWriteTimeout = 2 * time.Second // as the manager's

func (in *serialInput) set(vm string, c net.Conn) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.conns == nil {
		in.conns = map[string]net.Conn{}
	}
	if c == nil {
		delete(in.conns, vm)
	} else {
		in.conns[vm] = c
	}
}

func (in *serialInput) ConsoleWrite(vm string, p []byte) error {
	in.mu.Lock()
	c := in.conns[vm]
	in.mu.Unlock()
	if c == nil {
		return errNoConsole
	}
	c.SetWriteDeadline(time.Now().Add(consoleWriteTimeout))
	if _, err := c.Write(p); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errors.New("the guest is not reading its console")
		}
		return err
	}
	return nil
}

// discardInput drops keystrokes (the throughput phase sends none).
type discardInput struct{}

func (discardInput) ConsoleWrite(string, []byte) error { return nil }

// pump is the manager's console pump (manager.copyConsole): read the serial
// connection into a 32 KiB buffer, optionally append it to the rotating
// console log, hand it to the broker. It returns when the connection ends.
func pump(vm string, conn net.Conn, b *console.Broker, lg io.Writer) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if lg != nil {
				lg.Write(buf[:n])
			}
			b.Output(vm, buf[:n])
		}
		if err != nil {
			return err
		}
	}
}

// openConsoleLog opens a rotating console log with the daemon's defaults.
func openConsoleLog(dir string) (*consolelog.Log, error) {
	return consolelog.Open(filepath.Join(dir, "console.log"), consolelog.DefaultMaxSize, consolelog.DefaultKeep)
}

// withTimeout runs f and waits for it at most d; it reports whether f
// returned in time (a late f goes on in the background).
func withTimeout(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// ctxFor is a context bounded by d (for dials and reads that must end).
func ctxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
