package itest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// respondEvent is a "response" monitoring event as `bulwark events` prints it.
type respondEvent struct {
	VM       string `json:"vm"`
	Kind     string `json:"kind"`
	Summary  string `json:"summary"`
	Evidence struct {
		Actions    []string          `json:"actions"`
		Results    map[string]string `json:"results"`
		DumpSHA256 string            `json:"dump_sha256"`
		DumpFile   string            `json:"dump_file"`
		Findings   []struct {
			Kind, Summary, Rule string
		} `json:"findings"`
	} `json:"evidence"`
}

// responses returns the response events of a VM.
func (h *host) responses(vmName string) []respondEvent {
	out, _, _ := h.cli("events", "--vm", vmName)
	var evs []respondEvent
	for _, line := range strings.Split(out, "\n") {
		var ev respondEvent
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Kind == "response" {
			evs = append(evs, ev)
		}
	}
	return evs
}

// TestIntrospectionResponse: a response policy set through the CLI acts
// on real findings. A syscall-table hook written into rk1's memory is
// answered within a few periodic scans by a memory image (its SHA-256 in
// the event matches the file, which is root-only) and a quarantine that
// cuts rk1 off its neighbour's pings (drops counted as quarantined), all
// audited as bulwark-respond; `monitor release` restores traffic. A text
// patch in the neighbour, whose policy says pause, leaves it paused.
func TestIntrospectionResponse(t *testing.T) {
	h := newHost(t)
	h.mustCLI(nil, "network", "create", "rnet", "--subnet", "10.31.0.0/24", "--default-ingress", "allow")
	mk := func(name, ip, script string) {
		h.mustCLI(nil, "vm", "create", name, "--kernel", filepath.Join(imgDir, "vmlinuz"),
			"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
			"--cmdline", "bulwark.hostname="+name+" bulwark.ip="+ip+"/24",
			"--nic", "network=rnet,ip="+ip, "--disk", h.userdata(name, script)+":ro", "--monitor-interval", "2s")
	}
	mk("rk1", "10.31.0.11", `echo rk1-ready`)
	mk("nb1", "10.31.0.12", probe("nb-rk", "ping -c 1 -W 1 10.31.0.11"))

	policy := filepath.Join(h.dir, "policy.json")
	os.WriteFile(policy, []byte(`{"vms": {"rk1": {"syscall_hook": ["dump", "isolate"]}, "nb1": {"kernel_text_modified": ["pause"]}}}`), 0o600)
	if _, errs, err := h.cli("monitor", "response", "set", policy); err != nil {
		t.Fatalf("monitor response set: %v %s", err, errs)
	}
	out, _, err := h.cli("monitor", "response", "show")
	if err != nil || !strings.Contains(out, "vm rk1  syscall_hook") || !strings.Contains(out, "isolate,dump") {
		t.Fatalf("monitor response show: %v\n%s", err, out)
	}
	h.mustCLI(nil, "vm", "start", "rk1")
	h.mustCLI(nil, "vm", "start", "nb1")
	h.waitConsole("rk1", "rk1-ready", 1)
	h.expectProbe("nb1", "nb-rk", "ok")
	// The guests must be up for introspection (the first scans attach).
	h.waitFor("a clean scan of both", 120*time.Second, func() bool {
		for _, name := range []string{"rk1", "nb1"} {
			var rep scanReport
			o, _, err := h.cli("vmi", "check", name, "-o", "json")
			if err != nil || json.Unmarshal([]byte(o), &rep) != nil || len(rep.Findings) != 0 {
				return false
			}
		}
		return true
	})

	// The rootkit hooks getpid in rk1's sys_call_table.
	rk := newRootkit(t, fmt.Sprintf("/proc/%d/fd/3", h.vm("rk1").Runtime.PID), 256<<20, filepath.Join(imgDir, "vmlinuz"))
	table, _ := rk.k.Sym("sys_call_table")
	orig := rk.u64(table + 39*8)
	rk.put64(table+39*8, rk.u64(table+110*8))
	start := time.Now()
	var ev respondEvent
	h.waitFor("a response to the syscall hook", 90*time.Second, func() bool {
		rs := h.responses("rk1")
		if len(rs) == 0 {
			return false
		}
		ev = rs[0]
		return true
	})
	t.Logf("response %.1f s after the hook: %s", time.Since(start).Seconds(), ev.Summary)
	if ev.Evidence.Results["dump"] != "ok" || ev.Evidence.Results["isolate"] != "ok" ||
		strings.Join(ev.Evidence.Actions, ",") != "isolate,dump" || len(ev.Evidence.Findings) == 0 ||
		ev.Evidence.Findings[0].Kind != "syscall_hook" || ev.Evidence.Findings[0].Rule != "vms.rk1.syscall_hook" {
		t.Fatalf("response event: %+v", ev)
	}
	// The image: root-only, under the state directory, its digest as the event says.
	stateDir := filepath.Join(h.dir, "state")
	if !strings.HasPrefix(ev.Evidence.DumpFile, filepath.Join(stateDir, "forensics", "rk1")+"/") {
		t.Fatalf("dump file %q not under STATE/forensics/rk1", ev.Evidence.DumpFile)
	}
	f, err := os.Open(ev.Evidence.DumpFile)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	hash := sha256.New()
	n, err := io.Copy(hash, f)
	f.Close()
	if err != nil || hex.EncodeToString(hash.Sum(nil)) != ev.Evidence.DumpSHA256 || n < 250<<20 {
		t.Fatalf("dump: %d bytes, sha256 %x, event says %s (%v)", n, hash.Sum(nil), ev.Evidence.DumpSHA256, err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("dump mode %v, want 0600", fi.Mode().Perm())
	}
	for _, d := range []string{filepath.Join(stateDir, "forensics"), filepath.Dir(ev.Evidence.DumpFile)} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want 0700", d, st.Mode().Perm(), err)
		}
	}

	// Quarantine: the neighbour's pings fail, dropped as quarantined at rk1's port.
	h.expectProbe("nb1", "nb-rk", "fail")
	if d := h.portDrops("rk1/nic0"); d["quarantined"] == 0 {
		t.Errorf("rk1's port counted no quarantined drops: %v", d)
	}
	var q struct {
		VMs []string `json:"vms"`
	}
	h.mustCLI(&q, "monitor", "quarantine")
	if strings.Join(q.VMs, ",") != "rk1" {
		t.Fatalf("monitor quarantine: %v", q.VMs)
	}
	// Audited as the daemon's responder.
	var recs []struct{ User, Action, Object, Result, Detail string }
	h.mustCLI(&recs, "audit", "list", "--user", "bulwark-respond")
	var got []string
	for _, r := range recs {
		if r.Object == "/vms/rk1" && r.Result == "ok" {
			got = append(got, r.Action)
			if !strings.Contains(r.Detail, "finding syscall_hook") {
				t.Errorf("audit detail without the finding: %q", r.Detail)
			}
		}
	}
	if s := strings.Join(got, ","); !strings.Contains(s, "respondIsolate") || !strings.Contains(s, "respondDump") {
		t.Fatalf("audit records of bulwark-respond: %+v", recs)
	}
	// The hook stays: no second response while it does.
	time.Sleep(5 * time.Second)
	if rs := h.responses("rk1"); len(rs) != 1 {
		t.Fatalf("%d responses to one appearance", len(rs))
	}
	rk.put64(table+39*8, orig)

	// Release restores traffic.
	if out, errs, err := h.cli("monitor", "release", "rk1"); err != nil || !strings.Contains(out, "quarantine lifted") {
		t.Fatalf("monitor release: %v %s %s", err, out, errs)
	}
	h.expectProbe("nb1", "nb-rk", "ok")
	if out, _, _ := h.cli("events", "--vm", "rk1"); !strings.Contains(out, `"kind":"quarantine_released"`) {
		t.Errorf("no quarantine_released event:\n%s", out)
	}

	// nb1's policy pauses it on a kernel text patch.
	rk2 := newRootkit(t, fmt.Sprintf("/proc/%d/fd/3", h.vm("nb1").Runtime.PID), 256<<20, filepath.Join(imgDir, "vmlinuz"))
	acct, err := rk2.k.Sym("__x64_sys_acct")
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	rk2.k.Read(acct+2, b[:])
	rk2.write(acct+2, []byte{b[0] ^ 0xff})
	h.waitFor("nb1 to be paused by its response", 90*time.Second, func() bool { return h.vm("nb1").State == vm.Paused })
	h.waitFor("nb1's response event", 30*time.Second, func() bool {
		rs := h.responses("nb1")
		return len(rs) == 1 && rs[0].Evidence.Results["pause"] == "ok"
	})
	rk2.write(acct+2, b[:])
}
