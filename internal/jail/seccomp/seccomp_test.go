package seccomp

import (
	"bufio"
	"encoding/binary"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
)

func TestEmbeddedFiltersAreTheNamedOnes(t *testing.T) {
	files, err := fs.Glob(filterFS, "filters/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	want := slices.Clone(names)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("filters/ holds %v, names lists %v", got, want)
	}
}

func TestEmbeddedFiltersAssemble(t *testing.T) {
	for _, name := range names {
		s, err := load(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range s.Groups {
			if len(strings.Fields(g.Comment)) < 5 {
				t.Errorf("%s group %d: comment %q says too little", name, i, g.Comment)
			}
		}
		prog, err := Program(name)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := bpf.Assemble(prog)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(raw) > maxProgram {
			t.Fatalf("%s: %d instructions, kernel limit %d", name, len(raw), maxProgram)
		}
		if _, err := bpf.NewVM(prog); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := Program("nope"); err == nil || !strings.Contains(err.Error(), "no such filter") {
		t.Fatalf("unknown filter: %v", err)
	}
}

// maxProgram is the kernel's BPF_MAXINSNS.
const maxProgram = 4096

func TestParseRejects(t *testing.T) {
	const ok = `{"comment": "c", "default_action": "trap", "groups": [%s]}`
	grp := func(g string) string { return strings.Replace(ok, "%s", g, 1) }
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown top field", `{"comment": "c", "default_action": "trap", "defaultAction": "allow", "groups": [{"comment": "c", "syscalls": ["read"]}]}`, `unknown field "defaultAction"`},
		{"unknown group field", grp(`{"comment": "c", "syscalls": ["read"], "names": ["write"]}`), `unknown field "names"`},
		{"unknown arg field", grp(`{"comment": "c", "syscall": "clone", "args": [{"index": 0, "op": "eq", "value": 1, "mask": 2}]}`), `unknown field "mask"`},
		{"unknown syscall", grp(`{"comment": "c", "syscalls": ["read", "reed"]}`), `unknown syscall "reed" for x86_64`},
		{"unknown conditional syscall", grp(`{"comment": "c", "syscall": "klone", "args": [{"index": 0, "op": "eq", "value": 1}]}`), `unknown syscall "klone"`},
		{"trailing data", grp(`{"comment": "c", "syscalls": ["read"]}`) + `{}`, "data after the filter object"},
		{"no filter comment", `{"comment": " ", "default_action": "trap", "groups": [{"comment": "c", "syscalls": ["read"]}]}`, "no comment saying what the filter is for"},
		{"no group comment", grp(`{"syscalls": ["read"]}`), "group 0: no comment"},
		{"no groups", `{"comment": "c", "default_action": "trap", "groups": []}`, "no groups"},
		{"allow by default", `{"comment": "c", "default_action": "allow", "groups": [{"comment": "c", "syscalls": ["read"]}]}`, `default_action "allow"`},
		{"duplicate in group", grp(`{"comment": "c", "syscalls": ["read", "read"]}`), "read already listed in group 0"},
		{"duplicate across groups", grp(`{"comment": "c", "syscalls": ["read"]}, {"comment": "c", "syscalls": ["write", "read"]}`), "group 1: read already listed in group 0"},
		{"plain then conditional", grp(`{"comment": "c", "syscalls": ["clone"]}, {"comment": "c", "syscall": "clone", "args": [{"index": 0, "op": "bits_set", "value": 65536}]}`), "conditions would never apply"},
		{"conditional then plain", grp(`{"comment": "c", "syscall": "clone", "args": [{"index": 0, "op": "bits_set", "value": 65536}]}, {"comment": "c", "syscalls": ["clone"]}`), "cannot also be listed plainly"},
		{"syscall without args", grp(`{"comment": "c", "syscall": "clone"}`), "without \"args\""},
		{"both forms", grp(`{"comment": "c", "syscalls": ["read"], "syscall": "clone", "args": [{"index": 0, "op": "eq", "value": 1}]}`), "has both"},
		{"empty group", grp(`{"comment": "c"}`), "no syscalls"},
		{"bad action", grp(`{"comment": "c", "syscalls": ["read"], "action": "deny"}`), `unknown action "deny"`},
		{"bad errno", grp(`{"comment": "c", "syscalls": ["read"], "action": "errno:EWHAT"}`), `unknown errno "EWHAT"`},
		{"bad op", grp(`{"comment": "c", "syscall": "clone", "args": [{"index": 0, "op": "masked_eq", "value": 1}]}`), `unknown op "masked_eq"`},
		{"index", grp(`{"comment": "c", "syscall": "clone", "args": [{"index": 6, "op": "eq", "value": 1}]}`), "argument index 6"},
		{"several bits", grp(`{"comment": "c", "syscall": "clone", "args": [{"index": 0, "op": "bits_set", "value": 65537}]}`), "single-bit value"},
		{"no value", grp(`{"comment": "c", "syscall": "clone", "args": [{"index": 0, "op": "eq"}]}`), `takes one "value"`},
		{"in with value", grp(`{"comment": "c", "syscall": "prctl", "args": [{"index": 0, "op": "in", "value": 1}]}`), `takes "values"`},
		{"not json", `{"comment": `, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse("test", []byte(tc.in))
			if err == nil {
				t.Fatalf("accepted %s", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `seccomp filter "test": `) {
				t.Fatalf("error %q, want it to name the filter and say %q", err, tc.want)
			}
		})
	}
}

// seccompData lays out struct seccomp_data for x/net/bpf's interpreter,
// which loads 32-bit words big-endian where the kernel loads them in
// native (little-endian) order: each word is stored big-endian at the
// offset the kernel would read it from, low word of an argument first.
func seccompData(auditArch, nr uint32, args [6]uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], auditArch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[16+8*i+4:], uint32(a>>32))
	}
	return b
}

func runBPF(t *testing.T, vm *bpf.VM, auditArch, nr uint32, args [6]uint64) uint32 {
	t.Helper()
	r, err := vm.Run(seccompData(auditArch, nr, args))
	if err != nil {
		t.Fatal(err)
	}
	return uint32(r)
}

// decide is the reference semantics of a filter file, written straight
// from the format's description: the first group that matches decides.
func decide(s *spec, nr uint32, args [6]uint64) uint32 {
	for _, g := range s.Groups {
		act, _ := parseAction(g.Action)
		for _, n := range g.Syscalls {
			if uint32(arch.X86_64.SyscallNames[n]) == nr {
				return uint32(act)
			}
		}
		if g.Syscall == "" || uint32(arch.X86_64.SyscallNames[g.Syscall]) != nr {
			continue
		}
		alts, _ := g.conditions()
		for _, alt := range alts {
			all := true
			for _, c := range alt {
				v := args[c.index]
				var ok bool
				switch c.op {
				case "eq":
					ok = v == c.value
				case "ne":
					ok = v != c.value
				case "gt":
					ok = v > c.value
				case "ge":
					ok = v >= c.value
				case "lt":
					ok = v < c.value
				case "le":
					ok = v <= c.value
				case "bits_set":
					ok = v&c.value != 0
				case "bits_not_set":
					ok = v&c.value == 0
				}
				all = all && ok
			}
			if all {
				return uint32(act)
			}
		}
	}
	def, _ := parseAction(s.DefaultAction)
	return uint32(def)
}

// interesting returns argument values that probe the edges of every
// condition in s, and the syscall numbers the filter allows (an argument
// that equals a syscall number is how an assembler that confuses the two
// shows itself).
func interesting(s *spec) []uint64 {
	vals := []uint64{0, 1, 1 << 32, 1<<64 - 1, 0xffffffff, 1<<63 | 14}
	for _, g := range s.Groups {
		for _, n := range append(slices.Clone(g.Syscalls), g.Syscall) {
			if nr, ok := arch.X86_64.SyscallNames[n]; ok {
				vals = append(vals, uint64(nr), uint64(nr)|1<<32)
			}
		}
		alts, _ := g.conditions()
		for _, alt := range alts {
			for _, c := range alt {
				for _, d := range []uint64{0, 1, 1 << 32} {
					vals = append(vals, c.value+d, c.value-d, c.value^d, c.value|0x11)
				}
			}
		}
	}
	return vals
}

// checkAgainstReference runs the assembled program through x/net/bpf's
// interpreter for every x86_64 syscall number and many argument values and
// compares each answer with decide.
func checkAgainstReference(t *testing.T, s *spec) {
	t.Helper()
	prog, err := s.program()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	vals := interesting(s)
	rng := rand.New(rand.NewPCG(1, 2))
	x86 := uint32(arch.X86_64.ID)
	checked := 0
	for nr := range uint32(500) {
		argSets := [][6]uint64{{}}
		for _, v := range vals {
			for i := range 6 {
				var a [6]uint64
				a[i] = v
				argSets = append(argSets, a)
			}
		}
		for range 20 {
			var a [6]uint64
			for i := range a {
				a[i] = vals[rng.IntN(len(vals))]
			}
			argSets = append(argSets, a)
		}
		for _, a := range argSets {
			got, want := runBPF(t, vm, x86, nr, a), decide(s, nr, a)
			if got != want {
				t.Fatalf("%s: syscall %d (%s) args %#x: program says %#x, reference %#x",
					s.name, nr, arch.X86_64.SyscallNumbers[int(nr)], a, got, want)
			}
			checked++
		}
	}
	def, _ := parseAction(s.DefaultAction)
	// Another ABI gets the default action, x32 gets ENOSYS.
	if got := runBPF(t, vm, uint32(arch.I386.ID), 0, [6]uint64{}); got != uint32(def) {
		t.Errorf("%s: i386 syscall: %#x, want the default %#x", s.name, got, def)
	}
	if got := runBPF(t, vm, x86, x32Bit, [6]uint64{}); got != uint32(libseccomp.ActionErrno)|enosys {
		t.Errorf("%s: x32 read: %#x, want ENOSYS", s.name, got)
	}
	t.Logf("%s: %d (syscall, arguments) cases agree with the reference", s.name, checked)
}

func TestProgramMatchesReference(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s, err := load(name)
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstReference(t, s)
		})
	}
	t.Run("operators", func(t *testing.T) {
		// Every operator, on low and high words, several alternatives and
		// several groups for one syscall, an errno action in between.
		s, err := parse("operators", []byte(`{"comment": "c", "default_action": "kill_process", "groups": [
			{"comment": "c", "syscalls": ["read", "write"]},
			{"comment": "c", "syscall": "ioctl", "args": [{"index": 1, "op": "in", "values": [21505, 4294967296, 3]}, {"index": 0, "op": "lt", "value": 4294967300}]},
			{"comment": "c", "syscall": "ioctl", "args": [{"index": 2, "op": "ge", "value": 8589934592}]},
			{"comment": "c", "syscalls": ["openat"], "action": "errno:EACCES"},
			{"comment": "c", "syscall": "mmap", "args": [{"index": 2, "op": "bits_not_set", "value": 4}, {"index": 3, "op": "bits_set", "value": 8589934592}]},
			{"comment": "c", "syscall": "fcntl", "args": [{"index": 1, "op": "ne", "value": 1030}, {"index": 2, "op": "gt", "value": 4294967295}, {"index": 3, "op": "le", "value": 1}]},
			{"comment": "c", "syscall": "socket", "args": [{"index": 0, "op": "eq", "value": 1}], "action": "log"},
			{"comment": "c", "syscalls": ["close"], "action": "trap"}
		]}`))
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstReference(t, s)
	})
}

// TestPlainRulesMatchLibrary compares the program with go-seccomp-bpf's
// own assembler on the rules it assembles correctly (those without
// argument conditions; see assemble.go).
func TestPlainRulesMatchLibrary(t *testing.T) {
	for _, name := range names {
		s, err := load(name)
		if err != nil {
			t.Fatal(err)
		}
		plain := &spec{name: s.name, Comment: s.Comment, DefaultAction: s.DefaultAction}
		def, _ := parseAction(s.DefaultAction)
		lib := &libseccomp.Policy{DefaultAction: def}
		for _, g := range s.Groups {
			if len(g.Syscalls) == 0 {
				continue
			}
			act, _ := parseAction(g.Action)
			plain.Groups = append(plain.Groups, g)
			lib.Syscalls = append(lib.Syscalls, libseccomp.SyscallGroup{Names: g.Syscalls, Action: act})
		}
		ours, err := plain.program()
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := lib.Assemble()
		if err != nil {
			t.Fatal(err)
		}
		vmOurs, _ := bpf.NewVM(ours)
		vmTheirs, _ := bpf.NewVM(theirs)
		for _, a := range []uint32{uint32(arch.X86_64.ID), uint32(arch.I386.ID)} {
			for nr := range uint32(500) {
				for _, n := range []uint32{nr, nr | x32Bit} {
					if o, l := runBPF(t, vmOurs, a, n, [6]uint64{}), runBPF(t, vmTheirs, a, n, [6]uint64{}); o != l {
						t.Fatalf("%s: arch %#x syscall %#x: ours %#x, go-seccomp-bpf %#x", name, a, n, o, l)
					}
				}
			}
		}
	}
}

func readObserved(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n := strings.TrimSpace(sc.Text()); n != "" {
			out = append(out, n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(out) || len(slices.Compact(slices.Clone(out))) != len(out) {
		t.Fatalf("%s: not sorted and unique", file)
	}
	return out
}

// TestObservedSyscallsHaveRules keeps the measurements in testdata and the
// filters consistent: every syscall a traced process made has a rule (an
// allow, possibly with conditions, or a deliberate errno answer), so none
// of them hits the default action.
func TestObservedSyscallsHaveRules(t *testing.T) {
	for name, file := range map[string]string{VMM: "qemu-observed.txt", Monitor: "monitor-observed.txt"} {
		s, err := load(name)
		if err != nil {
			t.Fatal(err)
		}
		rules := s.actions()
		for _, n := range readObserved(t, file) {
			if err := checkName(n); err != nil {
				t.Errorf("%s: %v", file, err)
			}
			if _, ok := rules[n]; !ok {
				t.Errorf("%s filter: %s was observed (%s) but has no rule", name, n, file)
			}
		}
	}
}

// TestReportCounts prints the size of each filter (go test -run
// TestReportCounts -v).
func TestReportCounts(t *testing.T) {
	for name, file := range map[string]string{VMM: "qemu-observed.txt", Monitor: "monitor-observed.txt"} {
		allowed, err := Syscalls(name)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := load(name)
		var errno, conditional []string
		for n, a := range s.actions() {
			if strings.HasPrefix(a, "errno:") {
				errno = append(errno, n+"="+strings.TrimPrefix(a, "errno:"))
			}
		}
		for _, g := range s.Groups {
			if g.Syscall != "" {
				conditional = append(conditional, g.Syscall)
			}
		}
		sort.Strings(errno)
		prog, _ := Program(name)
		observed := readObserved(t, file)
		var notObserved []string
		for _, n := range allowed {
			if !slices.Contains(observed, n) {
				notObserved = append(notObserved, n)
			}
		}
		t.Logf("%-7s allowed %d syscalls (%d with argument conditions: %s), answered with an errno %d (%s), observed %d; allowed but not observed: %s; BPF program %d instructions",
			name, len(allowed), len(conditional), strings.Join(conditional, ", "), len(errno), strings.Join(errno, ", "),
			len(observed), strings.Join(notObserved, " "), len(prog))
	}
}

// TestFeatureGroups: ioctl (KVM) is in vmm+kvm only; a TCG VM makes no
// ioctl at all and does not get it. Unknown features are refused.
func TestFeatureGroups(t *testing.T) {
	tcg, err := Syscalls(VMM)
	if err != nil {
		t.Fatal(err)
	}
	kvm, err := Syscalls(VMMKVM)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(tcg, "ioctl") || !slices.Contains(kvm, "ioctl") || len(kvm) != len(tcg)+1 {
		t.Errorf("vmm %d syscalls (ioctl %v), vmm+kvm %d (ioctl %v)", len(tcg), slices.Contains(tcg, "ioctl"), len(kvm), slices.Contains(kvm, "ioctl"))
	}
	if _, err := Program(VMMKVM); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"vmm+tcg", "monitor+kvm", "vmm+", "nope+kvm"} {
		if _, err := Program(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
