package jail

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProgramBindsQEMU checks the library walk against the loader's own
// answer (ldd) for a real dynamically linked binary.
func TestProgramBindsLdd(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		bin = "/bin/ls"
	}
	binds, links, err := ProgramBinds(bin)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, b := range binds {
		got[b.Path] = true
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Skip("ldd:", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var p string
		switch {
		case len(f) >= 3 && f[1] == "=>":
			p = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			p = f[0]
		default:
			continue
		}
		rp, err := resolvedDir(p)
		if err != nil {
			t.Fatal(err)
		}
		if !got[rp] {
			t.Errorf("ldd lists %s (%s), the walk missed it", p, rp)
		}
	}
	t.Logf("%s: %d binds, symlinks %v", bin, len(binds), links)
}
