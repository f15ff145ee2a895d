package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/hv"
)

// Descriptor passing over QMP: a file the daemon opened goes to QEMU as
// SCM_RIGHTS ancillary data on the QMP socket, attached to the command
// that takes it (add-fd), so QEMU never opens a path for it.

// write sends one command's bytes, with oob as ancillary data if set.
func (q *QMP) write(b, oob []byte) error {
	if oob == nil {
		_, err := q.conn.Write(b)
		return err
	}
	uc, ok := q.conn.(*net.UnixConn)
	if !ok {
		return errors.New("descriptor passing needs a Unix socket")
	}
	n, oobn, err := uc.WriteMsgUnix(b, oob, nil)
	if err == nil && (n != len(b) || oobn != len(oob)) {
		err = fmt.Errorf("short write (%d of %d bytes, %d of %d ancillary)", n, len(b), oobn, len(oob))
	}
	return err
}

// ExecuteWithFile runs one command with f passed alongside it; QEMU gets
// its own duplicate, f stays the caller's.
func (q *QMP) ExecuteWithFile(ctx context.Context, cmd string, args any, f *os.File, out any) error {
	return q.execute(ctx, cmd, args, out, unix.UnixRights(int(f.Fd())))
}

// addFD gives QEMU a descriptor in a new fd set and returns the set's id,
// which names it as /dev/fdset/ID.
func (in *instance) addFD(ctx context.Context, f *os.File) (int, error) {
	in.mu.Lock()
	q := in.qmp
	in.mu.Unlock()
	if q == nil {
		return 0, errors.New("qmp not connected")
	}
	var r struct {
		FDSet int `json:"fdset-id"`
	}
	if err := q.ExecuteWithFile(ctx, "add-fd", nil, f, &r); err != nil {
		return 0, err
	}
	return r.FDSet, nil
}

// topNodes maps each virtio disk index to the top of its image chain: the
// node its device reads and writes (or, with disk limits, the node under
// the device's throttle filter diskNt): diskN at start, diskNsX after a
// snapshot (nodes are named by Build and by SnapshotDisks, never by the
// guest).
func (in *instance) topNodes(ctx context.Context) (map[int]string, error) {
	var blocks []struct {
		Inserted *struct {
			NodeName string `json:"node-name"`
		} `json:"inserted"`
	}
	if err := in.exec(ctx, "query-block", nil, &blocks); err != nil {
		return nil, err
	}
	out := map[int]string{}
	throttled := map[int]bool{}
	for _, b := range blocks {
		if b.Inserted == nil {
			continue
		}
		if i, ok := diskOfNode(b.Inserted.NodeName); ok {
			out[i] = b.Inserted.NodeName
		} else if i, ok := diskOfThrottle(b.Inserted.NodeName); ok {
			throttled[i] = true
		}
	}
	if len(throttled) == 0 {
		return out, nil
	}
	// A disk behind its throttle filter: the overlay goes under the filter,
	// so that the guest's requests stay throttled after the snapshot.
	tops, err := in.throttledTops(ctx, throttled)
	if err != nil {
		return nil, err
	}
	for i, n := range tops {
		out[i] = n
	}
	return out, nil
}

// diskOfNode parses "diskN" or "diskNsX" (X a snapshot node suffix).
func diskOfNode(node string) (int, bool) {
	rest, ok := strings.CutPrefix(node, "disk")
	if !ok {
		return 0, false
	}
	num, suffix, snap := strings.Cut(rest, "s")
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || strconv.Itoa(i) != num {
		return 0, false
	}
	if _, err := strconv.ParseUint(suffix, 36, 64); snap && err != nil {
		return 0, false
	}
	return i, true
}

// SnapshotDisks switches running disks to new overlays the daemon opened
// (tops: disk index → the new top, a qcow2 file whose backing is the
// disk's current top): each file goes to QEMU by descriptor (add-fd), is
// added as a node with no backing (blockdev-add, so QEMU opens no path
// and resolves no name), and one transaction of blockdev-snapshot actions
// puts every overlay on its disk's current node at the same instant. The
// guest keeps running. On error the added nodes are removed again and
// the disks are as they were.
func (in *instance) SnapshotDisks(ctx context.Context, tops map[int]hv.DiskFile) error {
	cur, err := in.topNodes(ctx)
	if err != nil {
		return fmt.Errorf("live snapshot: %w", err)
	}
	idx := make([]int, 0, len(tops))
	for i := range tops {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	type added struct{ node, file string }
	var done []added
	var fdsets []int
	undo := func() {
		bg, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for j := len(done) - 1; j >= 0; j-- {
			_ = in.exec(bg, "blockdev-del", map[string]any{"node-name": done[j].node}, nil)
			_ = in.exec(bg, "blockdev-del", map[string]any{"node-name": done[j].file}, nil)
		}
		for _, id := range fdsets {
			_ = in.exec(bg, "remove-fd", map[string]any{"fdset-id": id}, nil)
		}
	}
	var actions []map[string]any
	for _, i := range idx {
		t := tops[i]
		old, ok := cur[i]
		switch {
		case !ok:
			undo()
			return fmt.Errorf("live snapshot: disks[%d]: the hypervisor reports no node for it", i)
		case t.File == nil || t.Format != "qcow2" || t.ReadOnly:
			undo()
			return fmt.Errorf("live snapshot: disks[%d]: the new top must be a writable qcow2 file", i)
		}
		set, err := in.addFD(ctx, t.File)
		if err != nil {
			undo()
			return fmt.Errorf("live snapshot: disks[%d]: %w", i, err)
		}
		fdsets = append(fdsets, set)
		node := fmt.Sprintf("disk%ds%s", i, suffix)
		a := added{node: node, file: node + "f"}
		err = in.exec(ctx, "blockdev-add", map[string]any{"driver": "file", "node-name": a.file,
			"filename": fmt.Sprintf("/dev/fdset/%d", set), "read-only": false}, nil)
		if err == nil {
			err = in.exec(ctx, "blockdev-add", map[string]any{"driver": "qcow2", "node-name": a.node,
				"file": a.file, "read-only": false, "backing": nil}, nil)
			if err != nil {
				_ = in.exec(ctx, "blockdev-del", map[string]any{"node-name": a.file}, nil)
			}
		}
		if err != nil {
			undo()
			return fmt.Errorf("live snapshot: disks[%d]: %w", i, err)
		}
		done = append(done, a)
		actions = append(actions, map[string]any{"type": "blockdev-snapshot", "data": map[string]any{"node": old, "overlay": node}})
	}
	if err := in.exec(ctx, "transaction", map[string]any{"actions": actions}, nil); err != nil {
		undo()
		return fmt.Errorf("live snapshot: %w", err)
	}
	return nil
}
