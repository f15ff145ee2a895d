package qemu

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ExecuteWithFile sends the descriptor as SCM_RIGHTS with the command's
// bytes, and the server gets the same open file.
func TestQMPExecuteWithFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("overlay"), 0o600)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make(chan string, 1)
	path, _ := serveQMP(t, func(fq *fakeQEMU) {
		if !fq.handshake() {
			return
		}
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
		n, oobn, _, _, err := fq.conn.(*net.UnixConn).ReadMsgUnix(buf, oob)
		if err != nil {
			t.Error(err)
			return
		}
		var req struct{ Execute string }
		json.Unmarshal(buf[:n], &req)
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		var text string
		if len(msgs) == 1 {
			if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
				g := os.NewFile(uintptr(fds[0]), "passed")
				b := make([]byte, 7)
				g.ReadAt(b, 0)
				g.Close()
				text = string(b)
			}
		}
		got <- req.Execute + ":" + text
		fq.send(`{"return": {"fdset-id": 7, "fd": 9}}`)
	})
	q := dial(t, path)
	var r struct {
		FDSet int `json:"fdset-id"`
	}
	if err := q.ExecuteWithFile(ctxTimeout(t, 5e9), "add-fd", nil, f, &r); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "add-fd:overlay" || r.FDSet != 7 {
		t.Errorf("server got %q, reply %+v", s, r)
	}
}

func TestDiskOfNode(t *testing.T) {
	for node, want := range map[string]int{"disk0": 0, "disk12": 12, "disk1s1a2b3c": 1, "disk3s0": 3} {
		if i, ok := diskOfNode(node); !ok || i != want {
			t.Errorf("%s: %d %v, want %d", node, i, ok, want)
		}
	}
	for _, node := range []string{"disk", "disk0f", "disk0b0", "disk01", "disk-1", "net0", "disk0s", "disk0s!", strings.Repeat("disk", 2)} {
		if i, ok := diskOfNode(node); ok {
			t.Errorf("%s parsed as disk %d", node, i)
		}
	}
}
