package netsw

import (
	"slices"
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// Re-binding a running port's groups acts at once: joining app opens the
// database port, leaving it cuts the established connection on its next
// packet. A group the policy cannot compile changes nothing.
func TestSetVMPortGroups(t *testing.T) {
	ts := newTestSwitch(t, []firewall.Group{appGroup, dbGroup, {Name: "other"}})
	a := ts.attach("a", 0, "n", 1, "other")
	b := ts.attach("b", 0, "n", 2, "db")

	syn := a.flow(b).TCP(40000, 5432, packet.TCPSyn, 1, 0, nil)
	a.send(syn)
	a.expectNotForwarded(b)
	ts.waitDrops(b, "fw_default_deny", 1)

	if err := ts.sw.SetVMPortGroups("a", map[int][]string{0: {"app"}}); err != nil {
		t.Fatal(err)
	}
	if g := ts.status(a).Groups; !slices.Equal(g, []string{"app"}) {
		t.Errorf("port groups %v after the change, want [app]", g)
	}
	handshake(a, b, 40001, 5432)
	data := tcpData(a, b, 40001, 5432, "in")
	a.send(data)
	b.expect(data)

	if err := ts.sw.SetVMPortGroups("a", map[int][]string{0: {"other"}}); err != nil {
		t.Fatal(err)
	}
	a.send(tcpData(a, b, 40001, 5432, "out"))
	a.expectNotForwarded(b)
	ts.waitDrops(a, "fw_revoked", 1)

	// Unknown group: refused, the port keeps its groups and the policy.
	if err := ts.sw.SetVMPortGroups("a", map[int][]string{0: {"nope"}}); err == nil {
		t.Fatal("an unknown group was accepted")
	}
	if g := ts.status(a).Groups; !slices.Equal(g, []string{"other"}) {
		t.Errorf("port groups %v after a refused change, want [other]", g)
	}
	// Other VMs' ports and NICs not named are untouched; an unknown VM is a no-op.
	if err := ts.sw.SetVMPortGroups("a", map[int][]string{3: {"app"}}); err != nil {
		t.Error(err)
	}
	if err := ts.sw.SetVMPortGroups("ghost", map[int][]string{0: {"app"}}); err != nil {
		t.Error(err)
	}
	if g := ts.status(b).Groups; !slices.Equal(g, []string{"db"}) {
		t.Errorf("b's groups changed: %v", g)
	}
}
