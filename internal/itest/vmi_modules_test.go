package itest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// moduleFindings is the module part of a report, with every other view's
// findings logged.
func moduleFindings(t *testing.T, rep imageReport) []string {
	t.Helper()
	var out []string
	for _, f := range rep.Findings {
		if strings.HasPrefix(f.Kind, "module_") || f.Kind == "unknown_module" || f.Kind == "scan_error" && strings.Contains(f.Summary, "module") {
			out = append(out, f.Kind+": "+f.Summary+fmt.Sprintf(" (want %v)", f.Evidence["want"]))
		} else {
			t.Logf("(other view) %s: %s", f.Kind, f.Summary)
		}
	}
	return out
}

// TestVMIModules: each loaded module's text and read-only data are
// verified against its .ko from the VM's initramfs (relocated at its
// base, patch sites checked for their legal encodings): a clean guest
// gives no module finding; one byte flipped inside a module function is
// module_text_modified naming the module and the function; a module whose
// name is not in the initramfs is unknown_module.
func TestVMIModules(t *testing.T) {
	h := newHost(t)
	h.mustCLI(nil, "vm", "create", "vmmod", "--kernel", filepath.Join(imgDir, "vmlinuz"),
		"--initrd", filepath.Join(imgDir, "initrd.img"), "--memory", "256",
		"--cmdline", "bulwark.hostname=vmmod", "--disk", h.userdata("vmmod", "echo bw-mod-ready")+":ro")
	h.mustCLI(nil, "vm", "start", "vmmod")
	h.waitConsole("vmmod", "bw-mod-ready", 1)

	for i := 0; i < 2; i++ {
		rep := imageCheck(t, h, "vmmod")
		t.Logf("clean scan %d: scanned %v", i, rep.Scanned)
		if bad := moduleFindings(t, rep); len(bad) != 0 {
			t.Fatalf("clean guest, scan %d:\n%s", i, strings.Join(bad, "\n"))
		}
		if rep.Scanned["modules_verified"] == 0 || rep.Scanned["module_symbols"] == 0 {
			t.Fatalf("no module or module symbol verified: scanned %v", rep.Scanned)
		}
	}

	var mods struct {
		Items []guest.Module `json:"items"`
	}
	h.mustCLI(&mods, "vmi", "modules", "vmmod")
	var target guest.Module
	for _, m := range mods.Items {
		if m.Name == "virtio_rng" || target.Name == "" {
			target = m
		}
	}
	// The test finds a function in the module's own object (from the
	// same initramfs) and flips a byte past its ftrace site.
	initrd, err := os.ReadFile(filepath.Join(imgDir, "initrd.img"))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := kimage.ReadModuleTree(initrd)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tree.Ko(target.Name)
	if err != nil {
		t.Fatal(err)
	}
	ko, err := kimage.ParseKo(b)
	if err != nil {
		t.Fatal(err)
	}
	l := ko.CoreLayout()
	var fn kimage.KoSymbol
	var fnOff uint64
	for _, s := range ko.Symbols {
		if s.Type == 2 && s.Size >= 32 && int(s.Shndx) < len(ko.Sections) && ko.Sections[s.Shndx].Name == ".text" && l.Offset[s.Shndx] >= 0 {
			fn, fnOff = s, uint64(l.Offset[s.Shndx])+s.Value
			break
		}
	}
	if fn.Name == "" {
		t.Fatalf("no function of 32 bytes or more in %s's .text", target.Name)
	}
	v := h.vm("vmmod")
	rk := newRootkit(t, fmt.Sprintf("/proc/%d/fd/3", v.Runtime.PID), 256<<20, filepath.Join(imgDir, "vmlinuz"))
	at := target.Base + fnOff + 12
	var orig [1]byte
	if err := rk.k.Read(at, orig[:]); err != nil {
		t.Fatal(err)
	}
	rk.write(at, []byte{orig[0] ^ 0x5a})
	rep := imageCheck(t, h, "vmmod")
	found := false
	for _, f := range moduleFindings(t, rep) {
		t.Log(f)
		if strings.HasPrefix(f, "module_text_modified") && strings.Contains(f, target.Name) && strings.Contains(f, fn.Name+"+0xc") {
			found = true
		}
	}
	if !found {
		t.Fatalf("a byte flipped at %s+0xc in %s was not found", fn.Name, target.Name)
	}
	rk.write(at, orig[:])

	// One of the module's symbols renamed in its kallsyms table (what
	// /proc/kallsyms and stack traces show), as a rootkit disguises a
	// function in a known module.
	ckOff, _ := rk.k.Off("module.core_kallsyms")
	strOff, _ := rk.k.Off("mod_kallsyms.strtab")
	strtab, err := rk.k.U64(target.Module + ckOff + strOff)
	if err != nil || strtab < target.Base || strtab >= target.Base+target.Size {
		t.Fatalf("%s's core strtab at %#x (%v), core %#x+%#x", target.Name, strtab, err, target.Base, target.Size)
	}
	names := make([]byte, target.Base+target.Size-strtab)
	if err := rk.k.Read(strtab, names); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(names, []byte("\x00"+fn.Name+"\x00"))
	if i < 0 {
		t.Fatalf("%s not in %s's kallsyms names", fn.Name, target.Name)
	}
	symAt := strtab + uint64(i) + 1
	rk.write(symAt, []byte{'X'})
	rep = imageCheck(t, h, "vmmod")
	rk.write(symAt, []byte(fn.Name[:1]))
	found = false
	for _, f := range moduleFindings(t, rep) {
		t.Log(f)
		if strings.HasPrefix(f, "module_symbols_modified") && strings.Contains(f, target.Name) && strings.Contains(f, "X"+fn.Name[1:]) {
			found = true
		}
	}
	if !found {
		t.Fatalf("symbol %s renamed in %s's kallsyms table was not found", fn.Name, target.Name)
	}

	// A module renamed in memory (as a rootkit hides its own under a
	// name not in the image) is unknown.
	nameOff, _ := rk.k.Off("module.name")
	var name [56]byte
	if err := rk.k.Read(target.Module+nameOff, name[:]); err != nil {
		t.Fatal(err)
	}
	fake := append([]byte("bw_rootkit"), make([]byte, 56-10)...)
	rk.write(target.Module+nameOff, fake)
	rep = imageCheck(t, h, "vmmod")
	rk.write(target.Module+nameOff, name[:])
	found = false
	for _, f := range moduleFindings(t, rep) {
		t.Log(f)
		if strings.HasPrefix(f, "unknown_module") && strings.Contains(f, "bw_rootkit") {
			found = true
		}
	}
	if !found {
		t.Fatal("a module with a name not in the initramfs was not reported unknown_module")
	}
	if bad := moduleFindings(t, imageCheck(t, h, "vmmod")); len(bad) != 0 {
		t.Fatalf("restored guest:\n%s", strings.Join(bad, "\n"))
	}
}
