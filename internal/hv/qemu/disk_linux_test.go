package qemu

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestQcow2HeaderBackingNotOpened runs the real QEMU on a qcow2 whose
// header names a host file as its backing file, with the -blockdev options
// Args.Build writes: QEMU makes no node for the header's file and never
// opens it. This is the second line of defence; the daemon already refuses
// such a header before QEMU starts (internal/storage).
func TestQcow2HeaderBackingNotOpened(t *testing.T) {
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " not installed")
		}
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "host-secret")
	os.WriteFile(secret, []byte(strings.Repeat("HOSTSECRET\n", 100000)), 0o600)
	evil := filepath.Join(dir, "evil.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", evil, "1M").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	f, err := os.OpenFile(evil, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	argv := []string{"-nodefaults", "-no-user-config", "-display", "none", "-machine", "none", "-S", "-add-fd", "fd=3,set=1"}
	argv = append(argv, blockdevs("disk0", "/dev/fdset/1", "qcow2", false, "")...)
	argv = append(argv, "-qmp", "stdio")
	cmd := exec.Command("qemu-system-x86_64", argv...)
	cmd.ExtraFiles = []*os.File{f}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	rd := bufio.NewReader(stdout)
	line := func() map[string]any {
		t.Helper()
		done := make(chan map[string]any, 1)
		go func() {
			for {
				s, err := rd.ReadString('\n')
				if err != nil {
					done <- nil
					return
				}
				var m map[string]any
				if json.Unmarshal([]byte(s), &m) == nil && m["event"] == nil {
					done <- m
					return
				}
			}
		}()
		select {
		case m := <-done:
			if m == nil {
				t.Fatal("QEMU exited")
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatal("QEMU did not answer")
		}
		return nil
	}
	line() // greeting: the block devices are open by now
	stdin.Write([]byte(`{"execute":"qmp_capabilities"}` + "\n"))
	line()
	stdin.Write([]byte(`{"execute":"query-named-block-nodes","arguments":{"flat":true}}` + "\n"))
	nodes, _ := line()["return"].([]any)
	var names []string
	for _, n := range nodes {
		m, _ := n.(map[string]any)
		names = append(names, m["node-name"].(string))
	}
	if strings.Join(names, " ") != "disk0 disk0f" && strings.Join(names, " ") != "disk0f disk0" {
		t.Errorf("block nodes %v, want only disk0 and disk0f (no node for the header's backing file)", names)
	}
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/fd")
	for _, fd := range fds {
		if l, _ := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/fd/" + fd.Name()); strings.Contains(l, "host-secret") {
			t.Errorf("QEMU opened the header's backing file: fd %s -> %s", fd.Name(), l)
		}
	}
	stdin.Write([]byte(`{"execute":"quit"}` + "\n"))
	cmd.Wait()
}
