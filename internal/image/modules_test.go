package image

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sampleDep is an excerpt of Debian 12's cloud kernel modules.dep.
const sampleDep = `kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
`

func TestParseModulesDep(t *testing.T) {
	long := "a.ko:" + strings.Repeat(" b.ko", (maxDepLineLen-5)/5)
	long += strings.Repeat(" ", maxDepLineLen-len(long))
	tests := []struct {
		name    string
		in      string
		want    map[string][]string
		wantErr string // substring; "" means success
	}{
		{name: "empty", in: "", want: map[string][]string{}},
		{name: "blank lines and CRLF", in: "\n  \na.ko: b.ko\r\nb.ko:\r\n\n",
			want: map[string][]string{"a.ko": {"b.ko"}, "b.ko": {}}},
		{name: "no trailing newline", in: "x/a-b.ko:   x/c.ko.gz\tx/d.ko.xz",
			want: map[string][]string{"x/a-b.ko": {"x/c.ko.gz", "x/d.ko.xz"}}},
		{name: "line exactly at limit", in: long + "\n", want: nil},
		{name: "missing colon", in: "a.ko:\nb.ko c.ko\n", wantErr: "line 2: missing ':'"},
		{name: "empty module", in: ": a.ko\n", wantErr: "line 1: empty module path"},
		{name: "absolute path", in: "/lib/a.ko:\n", wantErr: "line 1: module path \"/lib/a.ko\" is not a clean"},
		{name: "parent escape", in: "a.ko:\n../../etc/shadow.ko:\n", wantErr: "line 2: module path"},
		{name: "unclean path", in: "x//a.ko:\n", wantErr: "not a clean relative path"},
		{name: "not a module", in: "a.ko: b.txt\n", wantErr: "line 1: dependency of a.ko: \"b.txt\" is not a kernel module"},
		{name: "bare extension", in: ".ko:\n", wantErr: "is not a kernel module"},
		{name: "odd characters", in: "a;b.ko:\n", wantErr: "invalid character"},
		{name: "duplicate", in: "a.ko:\nb.ko:\na.ko: b.ko\n", wantErr: "line 3: duplicate entry"},
		{name: "line too long", in: "a.ko:\n" + long + " \n", wantErr: "line 2: longer than"},
		{name: "line too long at EOF", in: long + " ", wantErr: "line 1: longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseModulesDep(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseModulesDepEntryLimit(t *testing.T) {
	var b strings.Builder
	for i := range maxDepEntries + 1 {
		fmt.Fprintf(&b, "m%d.ko:\n", i)
	}
	_, err := ParseModulesDep(strings.NewReader(b.String()))
	want := fmt.Sprintf("line %d: more than %d entries", maxDepEntries+1, maxDepEntries)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/hw_random/virtio-rng.ko": "virtio_rng",
		"virtio_net.ko":     "virtio_net",
		"a/b/x-y-z.ko.gz":   "x_y_z",
		"a/b/c.ko.xz":       "c",
		"a/b/c.ko.zst":      "c",
		"a/b/c.o":           "",
		".ko":               "",
		"kernel/dir.ko/x.c": "",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustParse(t *testing.T, s string) map[string][]string {
	t.Helper()
	deps, err := ParseModulesDep(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return deps
}

func names(mods []module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

func TestResolveModules(t *testing.T) {
	deps := mustParse(t, sampleDep)
	mods, err := resolveModules(deps, DefaultModules, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"failover", "net_failover", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
		"virtio_ring", "virtio", "virtio_mmio", "virtio_net", "virtio_pci", "virtio_rng"}
	if got := names(mods); !slices.Equal(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
	if mods[len(mods)-1].Path != "kernel/drivers/char/hw_random/virtio-rng.ko" {
		t.Errorf("virtio_rng path = %q", mods[len(mods)-1].Path)
	}

	_, err = resolveModules(deps, []string{"virtio_net", "virtio_blk", "nope"}, true)
	if err == nil || !strings.Contains(err.Error(), "virtio_blk, nope") {
		t.Errorf("strict missing: err = %v", err)
	}
	mods, err = resolveModules(deps, []string{"virtio-rng"}, true)
	if err != nil || !slices.Equal(names(mods), []string{"virtio_ring", "virtio", "virtio_rng"}) {
		t.Errorf("dash-named request: %v, %v", names(mods), err)
	}
}

func TestResolveModulesErrors(t *testing.T) {
	tests := []struct{ dep, wantErr string }{
		{"a.ko: b.ko\n", "depends on b.ko, which has no modules.dep entry"},
		{"x/a.ko:\ny/a.ko:\n", "module a provided by both x/a.ko and y/a.ko"},
		{"a.ko: b.ko\nb.ko: c.ko\nc.ko: b.ko\n", "cycle: cannot order a, b, c"},
	}
	for _, tt := range tests {
		_, err := resolveModules(mustParse(t, tt.dep), []string{"a"}, true)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: err = %v, want %q", tt.dep, err, tt.wantErr)
		}
	}
}

func TestTopoSort(t *testing.T) {
	got, err := topoSort(map[string][]string{
		"z": {}, "a": {"m"}, "m": {}, "b": {"z", "a", "a", "external"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Ties go to the smallest name: m before z, then a (now ready) before z.
	if want := []string{"m", "a", "z", "b"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	_, err = topoSort(map[string][]string{"ok": {}, "x": {"y"}, "y": {"z"}, "z": {"x"}, "self": {"self"}})
	if err == nil || !strings.Contains(err.Error(), "cycle: cannot order self, x, y, z") {
		t.Errorf("cycle: err = %v", err)
	}
}

func FuzzParseModulesDep(f *testing.F) {
	f.Add(sampleDep)
	f.Add("a.ko: b.ko\nb.ko:\n")
	f.Add("a.ko\n")
	f.Add("/x.ko: ../y.ko\r\n")
	f.Add(":\n\n:")
	f.Fuzz(func(t *testing.T, in string) {
		deps, err := ParseModulesDep(strings.NewReader(in))
		if err != nil {
			return
		}
		if len(deps) > maxDepEntries {
			t.Fatalf("%d entries", len(deps))
		}
		// Whatever parses must be safe to join onto the modules directory
		// and must round-trip through the canonical format.
		var b strings.Builder
		for mod, list := range deps {
			for _, p := range append([]string{mod}, list...) {
				if checkModulePath(p) != nil || ModuleName(p) == "" {
					t.Fatalf("accepted bad path %q", p)
				}
			}
			fmt.Fprintf(&b, "%s: %s\n", mod, strings.Join(list, " "))
		}
		again, err := ParseModulesDep(strings.NewReader(b.String()))
		if err != nil || !reflect.DeepEqual(again, deps) {
			t.Fatalf("round trip: %v\n%v\n%v", err, deps, again)
		}
		if _, err := resolveModules(deps, []string{"a"}, false); err != nil &&
			!strings.Contains(err.Error(), "cycle") && !strings.Contains(err.Error(), "no modules.dep entry") &&
			!strings.Contains(err.Error(), "provided by both") {
			t.Fatalf("unexpected resolve error: %v", err)
		}
	})
}
