// Package monitor is the boundary between the daemon and the introspection
// process (`bulwark monitor`, the security domain). The monitor runs as its
// own unprivileged uid and holds nothing of the daemon's: for each request
// the daemon passes, over a private Unix socket, a read-only descriptor of
// the VM's RAM file and of its kernel image, plus the vCPU registers it read
// over QMP. The monitor can read guest memory and cannot write it (the
// descriptor is O_RDONLY and the mapping PROT_READ); it cannot reach the
// daemon's database, keys, sockets or other VMs' files.
//
// Framing: a 4-byte big-endian length, then a JSON body; the descriptors of
// a request travel as SCM_RIGHTS with its first byte.
package monitor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/bulwark-project/bulwark/internal/hv"
)

// MaxRequest and MaxResponse bound a frame.
const (
	MaxRequest  = 1 << 20
	MaxResponse = 64 << 20
	maxFDs      = 4
)

// Request asks the monitor for one view or check of a VM.
type Request struct {
	Op      string         `json:"op"` // ps, modules, syscalls, idt, check, forget
	VM      string         `json:"vm"`
	Gen     string         `json:"gen"` // identifies one run of the VM (its start)
	RAMSize uint64         `json:"ram_size"`
	Regs    []hv.Registers `json:"regs,omitempty"`
	Kernel  string         `json:"kernel,omitempty"` // path, for messages only
}

// Response carries a result or an error.
type Response struct {
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

func writeFrame(c *net.UnixConn, body []byte, files []*os.File) error {
	frame := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = syscall.UnixRights(fds...)
	}
	n, oobn, err := c.WriteMsgUnix(frame, oob, nil)
	if err != nil {
		return err
	}
	if oobn != len(oob) {
		return errors.New("monitor: descriptors not sent")
	}
	if n < len(frame) {
		_, err = c.Write(frame[n:])
	}
	return err
}

// readFrame reads one frame and the descriptors sent with it.
func readFrame(c *net.UnixConn, max int) ([]byte, []*os.File, error) {
	hdr := make([]byte, 4)
	oob := make([]byte, syscall.CmsgSpace(maxFDs*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(hdr[:1], oob)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 {
		return nil, nil, io.EOF
	}
	files, ferr := parseRights(oob[:oobn])
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	if flags&syscall.MSG_CTRUNC != 0 {
		closeAll()
		return nil, nil, errors.New("monitor: too many descriptors")
	}
	if ferr != nil {
		closeAll()
		return nil, nil, ferr
	}
	if _, err := io.ReadFull(c, hdr[1:]); err != nil {
		closeAll()
		return nil, nil, err
	}
	size := binary.BigEndian.Uint32(hdr)
	if int64(size) > int64(max) {
		closeAll()
		return nil, nil, fmt.Errorf("monitor: frame of %d bytes, limit %d", size, max)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		closeAll()
		return nil, nil, err
	}
	return body, files, nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "passed"))
		}
	}
	return files, nil
}
