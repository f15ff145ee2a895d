package itest

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNICHostSocketRefused: a NIC may not be wired to an arbitrary host
// socket (it would bypass the switch and its firewall, and the daemon
// connects NIC sockets as root): the definition is refused with the field
// named.
func TestNICHostSocketRefused(t *testing.T) {
	h := newHost(t)
	_, stderr, err := h.cli("vm", "create", "nic", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--nic", "mac=52:54:00:aa:bb:01,socket=/run/systemd/journal/socket")
	if err == nil || !strings.Contains(stderr, "nics[0].socket") {
		t.Fatalf("NIC on a host socket accepted: err=%v stderr=%s", err, stderr)
	}
}
