package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// hostPeer is the host's own file I/O on the pool's file system: the
// same dd flags, size and block size as the guest, on a sparse file made
// like a raw volume (so its first write allocates, as the volumes' does).
type hostPeer struct {
	path    string
	sizeMiB int
}

func newHostPeer(path string, sizeMiB int, bytes int64) (*hostPeer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Truncate(bytes); err != nil {
		return nil, err
	}
	return &hostPeer{path: path, sizeMiB: sizeMiB}, nil
}

// run times one op: the file is evicted from the page cache first (the
// guest drops its caches before every op too), then dd (coreutils) runs,
// timed from just before exec to its exit, as the guest times its dd.
func (h *hostPeer) run(ctx context.Context, boot int, op string) (sample, error) {
	if err := evict(h.path); err != nil {
		return sample{}, err
	}
	line := ddRead(h.path, h.sizeMiB)
	if op == opWrite {
		line = ddWrite(h.path, h.sizeMiB)
	}
	f := strings.Fields(line)
	cmd := exec.CommandContext(ctx, f[0], f[1:]...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	secs := time.Since(t0).Seconds()
	if err != nil {
		return sample{}, fmt.Errorf("host %s: %v\n%s", line, err, out)
	}
	return sample{Boot: boot, Case: caseHost, Op: op, Seconds: secs}, nil
}
