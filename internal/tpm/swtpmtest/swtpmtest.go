// Package swtpmtest starts a real swtpm for tests: a fresh TPM 2.0 with its
// state in a temporary directory, reached over a unix socket, stopped and
// removed when the test ends.
//
// A missing swtpm fails the test rather than skipping it, because a skipped
// TPM test reads as a passed one; scripts/deps.sh installs swtpm for tests.
package swtpmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/tpm"
)

// startTimeout bounds how long swtpm may take to create its socket.
const startTimeout = 10 * time.Second

// Instance is one running swtpm.
type Instance struct {
	// Socket is the server (command) channel; Ctrl the control channel.
	Socket, Ctrl string
	// Dir holds the TPM state and both sockets.
	Dir string

	cmd    *exec.Cmd
	stderr *lockedBuffer // swtpm's output, for failure messages
	waited chan error    // receives cmd.Wait's result once

	stopOnce sync.Once
}

// Start starts swtpm with TPM2_Startup(CLEAR) already sent, so PCRs are
// readable and extendable at once, and registers its teardown with tb.
func Start(tb testing.TB) *Instance {
	tb.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		tb.Fatalf("swtpm is not installed: install the Debian package swtpm (apt-get install swtpm swtpm-tools; scripts/deps.sh does it for tests): %v", err)
	}
	// Not tb.TempDir: a unix socket path must fit in 108 bytes, and test
	// names make TempDir paths long.
	dir, err := os.MkdirTemp("", "swtpm")
	if err != nil {
		tb.Fatalf("swtpm state dir: %v", err)
	}
	in := &Instance{
		Dir:    dir,
		Socket: filepath.Join(dir, "tpm.sock"),
		Ctrl:   filepath.Join(dir, "ctrl.sock"),
		stderr: new(lockedBuffer),
	}
	in.cmd = exec.Command(bin, "socket", "--tpm2",
		"--server", "type=unixio,path="+in.Socket,
		"--ctrl", "type=unixio,path="+in.Ctrl,
		"--tpmstate", "dir="+dir,
		// not-need-init: no CMD_INIT over the control channel first;
		// startup-clear: swtpm sends TPM2_Startup(SU_CLEAR) itself.
		"--flags", "not-need-init,startup-clear")
	in.cmd.Stdout = in.stderr
	in.cmd.Stderr = in.stderr
	if err := in.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		tb.Fatalf("start %s: %v", bin, err)
	}
	tb.Cleanup(func() {
		in.Stop()
		os.RemoveAll(dir)
	})
	exited := make(chan error, 1)
	in.waited = exited
	go func() { exited <- in.cmd.Wait() }()
	deadline := time.Now().Add(startTimeout)
	for {
		// The socket file appears at bind(), before listen(): tpm.Open
		// retries a refused connection for a moment.
		if _, err := os.Stat(in.Socket); err == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			tb.Fatalf("swtpm exited before creating %s: %v\n%s", in.Socket, err, in.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("swtpm did not create %s within %v\n%s", in.Socket, startTimeout, in.stderr)
		}
	}
	return in
}

// Config is the tpm.Config that opens this instance.
func (in *Instance) Config() tpm.Config { return tpm.Config{Socket: in.Socket} }

// Stop kills swtpm and waits for it; later calls do nothing. Tests call it
// to see how clients behave when swtpm dies.
func (in *Instance) Stop() {
	in.stopOnce.Do(func() {
		if in.cmd.Process != nil {
			in.cmd.Process.Kill()
		}
		<-in.waited
	})
}

// String names the instance in test messages.
func (in *Instance) String() string {
	return fmt.Sprintf("swtpm(pid %d, %s)", in.cmd.Process.Pid, in.Socket)
}

// lockedBuffer collects swtpm's output while exec's copying goroutine may
// still be writing to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
