package install

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// directive is one key=value line of a unit file.
type directive struct {
	section, key, value string
	line                int
}

// parseUnit reads a unit file the way systemd does for our purposes:
// comments (# and ;) and blank lines skipped, [Section] headers, key=value.
// Continuation lines are not used in our unit and are rejected.
func parseUnit(t *testing.T, text string) []directive {
	t.Helper()
	var out []directive
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("line %d: %q is not a key=value line in a section", n, line)
			}
			out = append(out, directive{section, strings.TrimSpace(k), strings.TrimSpace(v), n})
		}
	}
	return out
}

func renderedUnit(t *testing.T) []directive {
	t.Helper()
	u, err := Unit("/usr/local/bin/bulwark")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(u, binaryMarker) || strings.Contains(u, "\t") {
		t.Fatal("unit has a leftover marker or a tab")
	}
	return parseUnit(t, u)
}

// TestUnitDirectives pins the hardening: each directive the daemon's
// design depends on, with its value. Changing one should be a decision,
// made in bulwark.service with its comment and in docs/hardening.md.
func TestUnitDirectives(t *testing.T) {
	got := map[string][]string{}
	for _, d := range renderedUnit(t) {
		got[d.section+"."+d.key] = append(got[d.section+"."+d.key], d.value)
	}
	want := map[string]string{
		"Unit.After":                       "network-online.target",
		"Service.Type":                     "exec",
		"Service.ExecStart":                "/usr/local/bin/bulwark serve",
		"Service.KillMode":                 "process",
		"Service.Delegate":                 "yes",
		"Service.RuntimeDirectory":         "bulwark",
		"Service.RuntimeDirectoryPreserve": "yes",
		"Service.RuntimeDirectoryMode":     "0700",
		"Service.StateDirectory":           "bulwark",
		"Service.StateDirectoryMode":       "0700",
		"Service.UMask":                    "0077",
		"Service.LimitNOFILE":              "1048576",
		"Service.LimitCORE":                "0",
		"Service.NoNewPrivileges":          "yes",
		"Service.RestrictSUIDSGID":         "yes",
		"Service.ProtectSystem":            "strict",
		"Service.ReadWritePaths":           "/var/lib/bulwark /run/bulwark /sys/fs/cgroup",
		"Service.PrivateMounts":            "yes",
		"Service.ProtectHome":              "yes",
		"Service.PrivateTmp":               "yes",
		"Service.ProtectKernelTunables":    "yes",
		"Service.ProtectKernelModules":     "yes",
		"Service.ProtectKernelLogs":        "yes",
		"Service.ProtectClock":             "yes",
		"Service.ProtectProc":              "invisible",
		"Service.DevicePolicy":             "closed",
		"Service.RestrictAddressFamilies":  "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET",
		"Service.SystemCallArchitectures":  "native",
		"Service.SystemCallErrorNumber":    "EPERM",
		"Service.LockPersonality":          "yes",
		"Service.RestrictRealtime":         "yes",
		"Install.WantedBy":                 "multi-user.target",
	}
	for k, v := range want {
		if len(got[k]) != 1 || got[k][0] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if d := got["Service.DeviceAllow"]; !slices.Equal(d, []string{"/dev/kvm rw", "/dev/net/tun rw"}) {
		t.Errorf("DeviceAllow = %q", d)
	}

	caps := strings.Fields(strings.Join(got["Service.CapabilityBoundingSet"], " "))
	slices.Sort(caps)
	wantCaps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_NET_ADMIN", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_RESOURCE"}
	if !slices.Equal(caps, wantCaps) {
		t.Errorf("CapabilityBoundingSet = %v, want %v", caps, wantCaps)
	}

	filter := got["Service.SystemCallFilter"]
	if len(filter) != 1 || !strings.HasPrefix(filter[0], "~") {
		t.Fatalf("SystemCallFilter = %q, want one deny list", filter)
	}
	denied := strings.Fields(strings.TrimPrefix(filter[0], "~"))
	for _, s := range []string{"@clock", "@module", "@reboot", "@raw-io", "ptrace", "io_uring_setup"} {
		if !slices.Contains(denied, s) {
			t.Errorf("SystemCallFilter does not deny %s", s)
		}
	}
	// The daemon calls these; a deny list must never contain them (or a
	// group holding them: @debug has pidfd_getfd, @mount has pivot_root).
	for _, s := range []string{"@debug", "@mount", "@privileged", "@process", "@resources", "pidfd_getfd", "pivot_root", "mount", "setns", "unshare", "clone3", "sethostname"} {
		if slices.Contains(denied, s) {
			t.Errorf("SystemCallFilter denies %s, which jailing needs", s)
		}
	}
}

// TestUnitOmissions: options that look like hardening but break the
// daemon or its VMs (see the unit's "Deliberately off" comment).
func TestUnitOmissions(t *testing.T) {
	off := map[string]string{
		"MemoryDenyWriteExecute": "QEMU TCG writes and executes its translation buffer",
		"ProtectHostname":        "its seccomp filter refuses the jail's sethostname",
		"RestrictNamespaces":     "the daemon creates namespaces; clone3 would fail with ENOSYS",
		"PrivateDevices":         "hides /dev/kvm and /dev/net/tun",
		"ProtectControlGroups":   "makes the delegated cgroup read-only",
		"PrivateUsers":           "drops capabilities in the host user namespace",
		"PrivateNetwork":         "cuts uplinks and the HTTPS listener",
		"ProcSubset":             "hides /proc/cpuinfo and /proc/sys",
		"DynamicUser":            "the daemon must be root",
		"User":                   "the daemon must be root",
	}
	for _, d := range renderedUnit(t) {
		if why, ok := off[d.key]; ok && d.value != "no" && d.value != "" {
			t.Errorf("line %d: %s=%s: %s", d.line, d.key, d.value, why)
		}
	}
}

// TestUnitNoDuplicateKeys: a repeated single-valued key silently overrides
// the first; only list keys meant to repeat may.
func TestUnitNoDuplicateKeys(t *testing.T) {
	repeatable := map[string]bool{"DeviceAllow": true}
	seen := map[string]int{}
	for _, d := range renderedUnit(t) {
		k := d.section + "." + d.key
		if first, ok := seen[k]; ok && !repeatable[d.key] {
			t.Errorf("line %d: %s repeats line %d", d.line, k, first)
		}
		seen[k] = d.line
	}
}

// TestUnitVerifies asks systemd itself, where it is installed.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	// verify wants ExecStart to name an existing executable.
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) to stand in for the binary")
	}
	bin, _ = filepath.EvalSymlinks(bin)
	u, err := Unit(bin)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bulwark.service")
	if err := os.WriteFile(path, []byte(u), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestCheckBinaryPath(t *testing.T) {
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{"/usr/local/bin/bulwark", true},
		{"/opt/bulwark-1.2/bin/bulwark", true},
		{"/rootfs/bulwark", true}, // not under /root
		{"bulwark", false},
		{"./bin/bulwark", false},
		{"/usr//bin/bulwark", false},
		{"/usr/bin/../bin/bulwark", false},
		{"/root/bulwark", false},
		{"/home/ops/go/bin/bulwark", false},
		{"/tmp/bulwark", false},
		{"/var/tmp/bulwark", false},
		{"/run/user/0/bulwark", false},
		{"/usr/bin/bul wark", false},
		{"/usr/bin/bulwark%n", false},
		{"/usr/bin/$bulwark", false},
		{`/usr/bin/bul"wark`, false},
		{"/usr/bin/bulwark;rm", false},
	} {
		if err := checkBinaryPath(tt.path); (err == nil) != tt.ok {
			t.Errorf("checkBinaryPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}

func TestFilesAndWrite(t *testing.T) {
	prefix := t.TempDir()
	if _, err := Files("relative", "/usr/local/bin/bulwark"); err == nil {
		t.Error("relative prefix accepted")
	}
	files, err := Files(prefix, "/usr/local/bin/bulwark")
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := []string{filepath.Join(prefix, UnitPath), filepath.Join(prefix, SysctlPath)}
	for i, f := range files {
		if f.Path != wantPaths[i] {
			t.Errorf("file %d at %s, want %s", i, f.Path, wantPaths[i])
		}
	}
	if p := Plan(files); !p[0].Changed || !p[1].Changed {
		t.Errorf("Plan on an empty root = %+v", p)
	}
	res, err := Write(files)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Changed {
			t.Errorf("%s not written", r.Path)
		}
		fi, err := os.Stat(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", r.Path, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(r.Path)
		if string(b) != string(files[i].Data) {
			t.Errorf("%s content differs", r.Path)
		}
	}
	if !strings.Contains(string(files[1].Data), "net.unix.max_dgram_qlen = 512") {
		t.Errorf("sysctl drop-in: %s", files[1].Data)
	}
	// A second run changes nothing and leaves no temporary files.
	res, err = Write(files)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Changed {
			t.Errorf("%s rewritten although unchanged", r.Path)
		}
	}
	for _, dir := range []string{filepath.Dir(wantPaths[0]), filepath.Dir(wantPaths[1])} {
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("%s holds %d entries, want 1", dir, len(ents))
		}
	}
	// A changed unit (another binary) is replaced.
	files2, _ := Files(prefix, "/opt/bulwark/bulwark")
	res, err = Write(files2)
	if err != nil || !res[0].Changed || res[1].Changed {
		t.Errorf("rewrite with another binary: %+v, %v", res, err)
	}
}

func TestCheckBinary(t *testing.T) {
	prefix := t.TempDir()
	bin := filepath.Join(prefix, "usr/local/bin/bulwark")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	if err := CheckBinary(prefix, "/usr/local/bin/bulwark"); err == nil {
		t.Error("missing binary accepted")
	}
	os.WriteFile(bin, []byte("x"), 0o644)
	if err := CheckBinary(prefix, "/usr/local/bin/bulwark"); err == nil {
		t.Error("non-executable binary accepted")
	}
	os.Chmod(bin, 0o755)
	if err := CheckBinary(prefix, "/usr/local/bin/bulwark"); err != nil {
		t.Error(err)
	}
}
