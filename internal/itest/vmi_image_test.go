package itest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
	"github.com/bulwark-project/bulwark/internal/vmi/profile"
)

// imageReport is the part of `vmi check` this test reads.
type imageReport struct {
	Findings []struct {
		Kind, Summary string
		Evidence      map[string]any
	} `json:"findings"`
	Scanned            map[string]int `json:"scanned"`
	TextBaseline       string         `json:"text_baseline"`
	TextBaselineReason string         `json:"text_baseline_reason"`
}

// TestIntrospectionImageBaseline: kernel text is verified against the
// kernel image from the monitor's first attach, so a patch written before
// the monitor ever looked (here: after boot, before any vmi call; the VM
// has no periodic scan; the byte lies in the function's ftrace NOP, so
// it is named with its site kind) is found, and a clean guest gives no
// finding with text_baseline "image".
func TestIntrospectionImageBaseline(t *testing.T) {
	h := newHost(t)
	h.mustCLI(nil, "vm", "create", "vmimg", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--cmdline", "bulwark.hostname=vmimg", "--disk", h.userdata("vmimg", "echo bw-image-ready")+":ro")
	h.mustCLI(nil, "vm", "start", "vmimg")
	h.waitConsole("vmimg", "bw-image-ready", 1)

	v := h.vm("vmimg")
	rk := newRootkit(t, fmt.Sprintf("/proc/%d/fd/3", v.Runtime.PID), 256<<20, filepath.Join(imgDir, "vmlinuz"))
	acct, err := rk.k.Sym("__x64_sys_acct")
	if err != nil {
		t.Fatal(err)
	}
	var orig [1]byte
	if err := rk.k.Read(acct+2, orig[:]); err != nil {
		t.Fatal(err)
	}
	rk.write(acct+2, []byte{orig[0] ^ 0xff})

	// And an alternative or paravirt site, whose legal forms depend on the
	// CPU and the hypervisor (they used to be held to their first-attach
	// bytes, so a patch made before it was its own baseline): a
	// canonical 3-byte NOP in its padding becomes another encoding of a
	// NOP ("66 66 90"), harmless to run and none of the site's forms.
	pvAt, pvWas := patchAltSite(t, rk)

	// The first vmi call: the monitor attaches to a kernel already patched.
	var rep imageReport
	rep = imageCheck(t, h, "vmimg")
	t.Logf("first check: baseline %q %s, scanned %v", rep.TextBaseline, rep.TextBaselineReason, rep.Scanned)
	// The API's ScanReport does not carry text_baseline yet (it mirrors
	// the monitor's report field by field); vmi info passes it through.
	var info map[string]any
	h.mustCLI(&info, "vmi", "info", "vmimg")
	if info["text_baseline"] != "image" || rep.TextBaseline != "" && rep.TextBaseline != "image" {
		t.Fatalf("text_baseline %v / %q (%v), want image", info["text_baseline"], rep.TextBaseline, info["text_baseline_reason"])
	}
	if _, ok := rep.Scanned["image_mismatches"]; !ok {
		t.Fatalf("the check did not verify against the image: scanned %v", rep.Scanned)
	}
	found := false
	for _, f := range rep.Findings {
		t.Logf("%s: %s", f.Kind, f.Summary)
		if f.Kind == "kernel_text_modified" && strings.Contains(f.Summary, "__x64_sys_acct") {
			found = true
		}
	}
	if !found {
		t.Fatalf("a text patch made before the first attach was not found naming __x64_sys_acct")
	}
	found = false
	for _, f := range rep.Findings {
		if f.Kind == "kernel_text_modified" && (f.Evidence["site"] == "alternative" || f.Evidence["site"] == "paravirt") &&
			f.Evidence["addr"] == fmt.Sprintf("%#x", pvAt) {
			found = true
		}
	}
	if !found {
		t.Fatalf("an alternative/paravirt site patched before the first attach (%#x) was not found", pvAt)
	}

	// Undone, the guest is clean against the image.
	rk.write(acct+2, orig[:])
	rk.write(pvAt, pvWas)
	rep = imageCheck(t, h, "vmimg")
	for _, f := range rep.Findings {
		if f.Kind == "scan_error" && !strings.Contains(f.Summary, "kernel text") {
			t.Logf("(another view's scan error, not this test's) %s", f.Summary)
			continue
		}
		t.Errorf("clean guest: %s: %s", f.Kind, f.Summary)
	}
	if rep.Scanned["image_mismatches"] != 0 || rep.Scanned["protected_pages"] == 0 {
		t.Errorf("clean check against the image: scanned %v", rep.Scanned)
	}
	t.Logf("clean check: scanned %v", rep.Scanned)

	// Patch sites whose legal encodings depend on run-time state are held
	// to it: an ftrace site calling into module space that no registered
	// ftrace_ops owns, and a static-call trampoline jumping to a kernel
	// function its key does not hold, were both accepted by the kind-only
	// rules (any call outside the image; any kernel address).
	rel32 := func(op byte, at, target uint64) []byte {
		b := []byte{op, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(b[1:], uint32(int32(int64(target)-int64(at+5))))
		return b
	}
	for _, c := range []struct {
		name, sym string
		bytes     func(at uint64) []byte
		want      string
	}{
		{"ftrace site", "__x64_sys_acct", func(at uint64) []byte { return rel32(0xe8, at, 0xffffffffc0001000) }, "ftrace trampoline"},
		{"static-call trampoline", "__SCT__preempt_schedule", func(at uint64) []byte { return rel32(0xe9, at, acct) }, "its key's function"},
	} {
		at, err := rk.k.Sym(c.sym)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		was := make([]byte, 5)
		if err := rk.k.Read(at, was); err != nil {
			t.Fatal(err)
		}
		rk.write(at, c.bytes(at))
		rep = imageCheck(t, h, "vmimg")
		rk.write(at, was)
		found := false
		for _, f := range rep.Findings {
			t.Logf("%s: %s: %s", c.name, f.Kind, f.Summary)
			if f.Kind == "kernel_text_modified" && strings.Contains(f.Summary, c.sym) && strings.Contains(f.Summary, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s at %s (% x, was % x) not found as %q", c.name, c.sym, c.bytes(at), was, c.want)
		}
	}
}

// imageCheck runs `vmi check`, which exits 1 when some view could not run:
// the report is read either way, and scan errors of other views are only
// logged by the callers.
func imageCheck(t *testing.T, h *host, name string) imageReport {
	t.Helper()
	out, errs, err := h.cli("vmi", "check", name, "-o", "json")
	var rep imageReport
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		t.Fatalf("vmi check %s: %v %v\n%s\n%s", name, err, jerr, out, errs)
	}
	return rep
}

// patchAltSite finds an alternative or paravirt site of the guest's kernel
// (from its image) whose bytes end in the canonical 3-byte NOP and writes
// "66 66 90" there; it returns the site's runtime address and its bytes.
func patchAltSite(t *testing.T, rk *rootkit) (uint64, []byte) {
	t.Helper()
	kern := filepath.Join(imgDir, "vmlinuz")
	f, err := os.Open(kern)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	vmlinux, err := kimage.Extract(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.LoadOrDerive(t.TempDir(), kern)
	if err != nil {
		t.Fatal(err)
	}
	img, err := guest.BuildImageText(vmlinux, prof.Kallsyms)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range img.Sites {
		if s.Kind != guest.SiteParavirt || s.Len < 6 {
			continue
		}
		at := s.Addr + rk.k.Slide
		b := make([]byte, s.Len)
		if rk.k.Read(at, b) != nil || !bytes.HasSuffix(b, []byte{0x0f, 0x1f, 0x00}) {
			continue
		}
		p := append(append([]byte(nil), b[:len(b)-3]...), 0x66, 0x66, 0x90)
		rk.write(at, p)
		t.Logf("site at %#x (%s): % x -> % x", at, rk.k.Name(at), b, p)
		return at, b
	}
	t.Fatal("no paravirt site ending in a 3-byte NOP")
	return 0, nil
}
