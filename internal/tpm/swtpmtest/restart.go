package swtpmtest

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Restart stops swtpm in an orderly way (the control channel's shutdown,
// so that it saves its state) and starts a new swtpm on the same state
// directory and sockets, as a host reboot would: persistent objects and NV
// survive, transient objects, sessions and PCRs do not. The returned
// Instance replaces in (which is stopped); the state directory is still
// removed when the test ends. Open it with Instance.Open, which waits
// until swtpm listens.
func (in *Instance) Restart(tb testing.TB) *Instance {
	tb.Helper()
	in.shutdown(tb)
	next := &Instance{Dir: in.Dir, Socket: in.Socket, Ctrl: in.Ctrl, stderr: new(lockedBuffer)}
	for _, sock := range []string{next.Socket, next.Ctrl} {
		if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
			tb.Fatalf("remove stale socket: %v", err)
		}
	}
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		tb.Fatalf("swtpm is not installed: %v", err)
	}
	next.cmd = exec.Command(bin, "socket", "--tpm2",
		"--server", "type=unixio,path="+next.Socket,
		"--ctrl", "type=unixio,path="+next.Ctrl,
		"--tpmstate", "dir="+next.Dir,
		"--flags", "not-need-init,startup-clear")
	next.cmd.Stdout = next.stderr
	next.cmd.Stderr = next.stderr
	if err := next.cmd.Start(); err != nil {
		tb.Fatalf("restart %s: %v", bin, err)
	}
	tb.Cleanup(next.Stop)
	exited := make(chan error, 1)
	next.waited = exited
	go func() { exited <- next.cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := os.Stat(next.Socket); err == nil {
			return next
		}
		select {
		case err := <-exited:
			exited <- err
			tb.Fatalf("restarted swtpm exited before creating %s: %v\n%s", next.Socket, err, next.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("restarted swtpm did not create %s within %v\n%s", next.Socket, startTimeout, next.stderr)
		}
	}
}

// shutdown asks swtpm to save its state and exit (swtpm_ioctl -s), and
// kills it if it has not exited within startTimeout.
func (in *Instance) shutdown(tb testing.TB) {
	tb.Helper()
	in.stopOnce.Do(func() {
		ioctl, err := exec.LookPath("swtpm_ioctl")
		if err == nil {
			out, err := exec.Command(ioctl, "-s", "--unix", in.Ctrl).CombinedOutput()
			if err != nil {
				tb.Logf("swtpm_ioctl -s: %v: %s", err, out)
			}
		}
		select {
		case <-in.waited:
		case <-time.After(startTimeout):
			in.cmd.Process.Kill()
			<-in.waited
		}
	})
}
