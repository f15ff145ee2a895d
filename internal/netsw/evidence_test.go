package netsw

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw/packet"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// Spoofing and other per-port drops are logged with their reason and VM, at
// most one line per port and reason a second: a burst of 50 spoofed frames
// gives one line for its first frame; the counters have all 50.
func TestDropsLoggedPerPortAndReason(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	b := ts.attach("b", 0, "n", 2, "web")
	spoofed := packettest.Flow{SrcMAC: a.mac, DstMAC: b.mac, Src: netip.MustParseAddr("10.0.0.99"), Dst: b.ip}.UDP(1, 2, nil)
	for range 50 {
		a.send(spoofed)
	}
	ts.waitDrops(a, "spoofed_ip", 50)
	if !ts.logHas(`"reason":"spoofed_ip"`) {
		t.Fatalf("no spoofed_ip line:\n%s", ts.log.String())
	}
	var lines []FirewallEvent
	for _, ev := range decodeLog(t, ts.log.String()) {
		if ev.Reason == "spoofed_ip" {
			lines = append(lines, ev)
		}
	}
	want := FirewallEvent{Action: "drop", Reason: "spoofed_ip", VM: "a", Frames: 1, Network: "n", InPort: "a/nic0",
		Proto: packet.ProtoUDP, Src: "10.0.0.99", Dst: b.ip.String(), SrcPort: 1, DstPort: 2}
	if len(lines) != 1 {
		t.Fatalf("%d spoofed_ip lines, want 1:\n%s", len(lines), ts.log.String())
	}
	lines[0].Time = time.Time{}
	if lines[0] != want {
		t.Errorf("line %+v\nwant %+v", lines[0], want)
	}
}

// A VM's counters survive its restart: the new port of the same NIC starts
// from the old port's counts.
func TestCountersCarryOverRestart(t *testing.T) {
	ts := newTestSwitch(t, webDB)
	a := ts.attach("a", 0, "n", 1, "web")
	ts.barrier(a)
	ts.barrier(a)
	ts.sw.DetachVM("a")
	a2 := ts.attach("a", 0, "n", 1, "web")
	st := ts.status(a2)
	if st.Drops["spoofed_mac"] != 2 || st.RxFrames != 2 {
		t.Fatalf("after restart: rx %d, drops %v; want 2 and spoofed_mac=2", st.RxFrames, st.Drops)
	}
	ts.barrier(a2)
	if n := ts.status(a2).Drops["spoofed_mac"]; n != 3 {
		t.Errorf("spoofed_mac %d after one more, want 3", n)
	}
}

func TestFilterLog(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	evs := []FirewallEvent{
		{Time: t0, Action: "allow", Network: "n", InPort: "web1/nic0", OutPort: "db/nic0"},
		{Time: t0.Add(time.Minute), Action: "drop", Reason: "spoofed_ip", VM: "web10", Network: "n", InPort: "web10/nic0"},
		{Time: t0.Add(2 * time.Minute), Action: "drop", Network: "m", InPort: "uplink/m", OutPort: "web1/nic1"},
	}
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		buf.Write(append(b, '\n'))
	}
	buf.WriteString("not json\n")
	data := buf.Bytes()
	cases := []struct {
		f    LogFilter
		want []int
	}{
		{LogFilter{Network: "n"}, []int{0, 1}},
		{LogFilter{VM: "web1"}, []int{0, 2}},
		{LogFilter{VM: "web10"}, []int{1}},
		{LogFilter{VM: "db", Network: "m"}, nil},
		{LogFilter{Since: t0.Add(time.Minute)}, []int{1, 2}},
		{LogFilter{Until: t0.Add(time.Minute)}, []int{0, 1}},
		{LogFilter{Since: t0.Add(30 * time.Second), Until: t0.Add(90 * time.Second)}, []int{1}},
	}
	for _, tc := range cases {
		var want []byte
		for _, i := range tc.want {
			b, _ := json.Marshal(evs[i])
			want = append(want, append(b, '\n')...)
		}
		if got := FilterLog(data, tc.f); !bytes.Equal(got, want) {
			t.Errorf("%+v:\n%s\nwant\n%s", tc.f, got, want)
		}
	}
	if got := FilterLog(data, LogFilter{}); !bytes.Equal(got, data) {
		t.Error("zero filter changed the data")
	}
}

// FuzzFilterLog: any bytes, any filter: output is a subsequence of whole
// input lines.
func FuzzFilterLog(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-01T10:00:00Z","network":"n","in_port":"a/nic0"}`+"\n"), "n", "a", int64(0))
	f.Add([]byte("{}\n\n{\"vm\":1}\nxx"), "", "b", int64(1e18))
	f.Fuzz(func(t *testing.T, data []byte, network, vm string, since int64) {
		flt := LogFilter{Network: network, VM: vm}
		if since != 0 {
			flt.Since = time.Unix(0, since)
		}
		out := FilterLog(data, flt)
		if len(out) > len(data) {
			t.Fatal("output longer than input")
		}
		in := string(data)
		for _, l := range strings.SplitAfter(string(out), "\n") {
			if l != "" && !strings.Contains(in, l) {
				t.Fatalf("line %q not in the input", l)
			}
		}
	})
}
