package main

import (
	"os/exec"
	"strings"
	"testing"
)

func TestParseConsole(t *testing.T) {
	log := strings.Join([]string{
		"bulwark-guest-ready hostname=disk-bench",
		"BENCHDISK 0 start t=100", // an earlier boot's lines are skipped
		"BENCHDISK 0 raw write rc=0 t0=1 t1=2",
		"[    1.234] random: crng init done",
		"BENCHDISK 1 start t=1000000000\r",
		"BENCHDISK 1 raw read-cold rc=0 t0=1000000000 t1=3000000000",
		"BENCHDISK 1 qcow2 read-cold rc=0 t0=3000000000 t1=3500000000",
		"BENCHDISK 1 raw write rc=1 t0=5 t1=6",
		"BENCHDISK 1 err dd: /dev/vda: Invalid argument",
		"BENCHDISK 1 qcow2 write rc=0 t0=9 t1=[   2.0] virtio_blk",
		"BENCHDISK 1 done t=4000000000",
	}, "\n")
	out := parseConsole(log, 1)
	if !out.Done || out.GuestSpanNS != 3e9 {
		t.Errorf("done %v span %d", out.Done, out.GuestSpanNS)
	}
	want := []sample{{1, "raw", "read-cold", 2}, {1, "qcow2", "read-cold", 0.5}}
	if len(out.Samples) != len(want) {
		t.Fatalf("samples %+v", out.Samples)
	}
	for i, s := range want {
		if out.Samples[i] != s {
			t.Errorf("sample %d: %+v, want %+v", i, out.Samples[i], s)
		}
	}
	errs := strings.Join(out.Errors, "|")
	for _, sub := range []string{"raw write: dd exited 1", "Invalid argument", "unparsed line: BENCHDISK 1 qcow2 write"} {
		if !strings.Contains(errs, sub) {
			t.Errorf("errors %q lack %q", errs, sub)
		}
	}
	if out := parseConsole(log, 2); out.Done || len(out.Samples)+len(out.Errors) != 0 {
		t.Errorf("boot 2: %+v", out)
	}
}

// TestScript checks the user data parses as a shell script and holds the
// ops the plan asks for, with the same dd lines the host runs.
func TestScript(t *testing.T) {
	for _, p := range []bootPlan{
		{Boot: 0, Cases: []guestDisk{{caseRaw, 2048}, {caseQcow2, 4096}}, Write: true, SizeMiB: 8, Warm: guestDisk{"warm", 6144}},
		{Boot: 3, Cases: []guestDisk{{caseQcow2, 4096}, {caseRaw, 2048}}, ReadCold: true, SizeMiB: 8},
	} {
		s := p.script()
		if sh, err := exec.LookPath("sh"); err == nil {
			if out, err := exec.Command(sh, "-n", "-c", s).CombinedOutput(); err != nil {
				t.Errorf("boot %d: sh -n: %v %s\n%s", p.Boot, err, out, s)
			}
		}
		if strings.Contains(s, "disk 6144") != (p.Warm.Sectors > 0) {
			t.Errorf("boot %d: warm-up read does not match the plan:\n%s", p.Boot, s)
		}
		for _, d := range p.Cases {
			has := func(op, dd string) bool { return strings.Contains(s, "run "+d.Case+" "+op+" "+dd+"\n") }
			if has(opWrite, ddWrite("$D_"+d.Case, 8)) != p.Write || has(opReadWarm, ddRead("$D_"+d.Case, 8)) != p.Write ||
				has(opReadCold, ddRead("$D_"+d.Case, 8)) != p.ReadCold {
				t.Errorf("boot %d, %s: ops do not match the plan:\n%s", p.Boot, d.Case, s)
			}
		}
	}
}
