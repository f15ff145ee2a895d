package conntrack

import (
	"testing"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
)

// One port cannot take more than its share of the table; others still can,
// and a port gets its share back as its flows go.
func TestPerPortQuota(t *testing.T) {
	tb := New(Config{MaxFlows: 100, MaxFlowsPerPort: 10})
	for i := range 10 {
		if _, r := tb.Create(0, udp(vmA, vmB, uint16(i+1), 53), 1, 7, 2); r != packet.OK {
			t.Fatalf("flow %d: %v", i, r)
		}
	}
	if _, r := tb.Create(0, udp(vmA, vmB, 999, 53), 1, 7, 2); r != packet.CTQuota {
		t.Fatalf("11th flow of port 7 = %v, want ct_port_quota", r)
	}
	if _, r := tb.Create(0, udp(vmB, vmA, 999, 53), 1, 8, 7); r != packet.OK {
		t.Fatalf("another port's flow = %v", r)
	}
	if st := tb.Stats(); st.QuotaDrops != 1 {
		t.Fatalf("QuotaDrops = %d", st.QuotaDrops)
	}
	tb.Delete(udp(vmA, vmB, 1, 53).Tuple)
	if _, r := tb.Create(0, udp(vmA, vmB, 999, 53), 1, 7, 2); r != packet.OK {
		t.Fatalf("after a delete port 7 = %v", r)
	}
	if d := (Config{MaxFlows: 400}).withDefaults().MaxFlowsPerPort; d != 100 {
		t.Fatalf("default per-port quota %d, want MaxFlows/4", d)
	}
}
