package itest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// TestTapUplink: a network whose uplink is a TAP device the switch creates;
// the test moves it into its own namespace (an external host) and the VM
// reaches that host through it, while the host cannot open a flow into the
// VM (default ingress).
func TestTapUplink(t *testing.T) {
	h := newHost(t)
	ns := fmt.Sprintf("bwp%d", os.Getpid()%100000)
	tap := ns + "t"
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	h.mustCLI(nil, "network", "create", "tapnet", "--subnet", "10.40.0.0/24", "--uplink", "tap:"+tap)
	// The switch holds the TAP's descriptor; the interface itself can live
	// in another namespace.
	sh(t, "ip", "link", "set", tap, "netns", ns)
	sh(t, "ip", "-n", ns, "addr", "add", "10.40.0.254/24", "dev", tap)
	sh(t, "ip", "-n", ns, "link", "set", tap, "up")
	h.netVM("tapvm", "network=tapnet,ip=10.40.0.7", probe("tap", "ping -c 1 -W 1 10.40.0.254"))
	h.mustCLI(nil, "vm", "start", "tapvm")
	h.expectProbe("tapvm", "tap", "ok")
	if exec.Command("ip", "netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "2", "10.40.0.7").Run() == nil {
		t.Error("the external host opened a flow into the VM without a rule")
	}
	if d := h.portDrops("tapvm/nic0"); d["fw_default_deny"] == 0 {
		t.Errorf("no default-deny drop counted: %v", d)
	}
}
