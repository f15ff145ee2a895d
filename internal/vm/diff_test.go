package vm

import (
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	base := Spec{Name: "web", VCPUs: 1, MemoryMiB: 64, Kernel: "/k", Accel: "auto",
		Disks: []Disk{{Path: "/d0"}},
		NICs:  []NIC{{MAC: "52:54:00:00:00:01", Network: "lab", IP: "10.0.0.2", Groups: []string{"web"}}}}
	edit := func(f func(s *Spec)) Spec {
		s := base
		s.Disks = append([]Disk(nil), base.Disks...)
		s.NICs = append([]NIC(nil), base.NICs...)
		f(&s)
		return s
	}
	tests := []struct {
		name string
		b    Spec
		want []Change
	}{
		{"same", base, nil},
		{"scalars in field order", edit(func(s *Spec) { s.MemoryMiB = 128; s.VCPUs = 2 }),
			[]Change{{"vcpus", "1", "2"}, {"memory_mib", "64", "128"}}},
		{"string set and cleared", edit(func(s *Spec) { s.Cmdline = "quiet"; s.Kernel = "" }),
			[]Change{{"kernel", `"/k"`, `""`}, {"cmdline", `""`, `"quiet"`}}},
		{"no HTML escaping", edit(func(s *Spec) { s.Cmdline = "a<b&c" }),
			[]Change{{"cmdline", `""`, `"a<b&c"`}}},
		{"disk added", edit(func(s *Spec) { s.Disks = append(s.Disks, Disk{Path: "/d1", ReadOnly: true}) }),
			[]Change{{"disks[1]", "", `{"path":"/d1","read_only":true}`}}},
		{"disk removed", edit(func(s *Spec) { s.Disks = nil }),
			[]Change{{"disks[0]", `{"path":"/d0"}`, ""}}},
		{"disk field", edit(func(s *Spec) { s.Disks[0].ReadOnly = true }),
			[]Change{{"disks[0].read_only", "false", "true"}}},
		{"groups as a whole", edit(func(s *Spec) { s.NICs[0].Groups = []string{"web", "ssh"} }),
			[]Change{{"nics[0].groups", `["web"]`, `["web","ssh"]`}}},
		{"groups emptied", edit(func(s *Spec) { s.NICs[0].Groups = []string{} }),
			[]Change{{"nics[0].groups", `["web"]`, `[]`}}},
		{"nil and empty list are equal", edit(func(s *Spec) { s.NICs[0].Groups = nil; s.Disks = []Disk{{Path: "/d0"}} }),
			[]Change{{"nics[0].groups", `["web"]`, `[]`}}},
		{"console policy added", edit(func(s *Spec) { s.Console = &ConsolePolicy{Clipboard: "allow"} }),
			[]Change{{"console", "", `{"clipboard":"allow"}`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(base, tc.b)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Diff = %#v\nwant %#v", got, tc.want)
			}
		})
	}
	// Console policies on both sides are compared field by field.
	a, b := base, base
	a.Console, b.Console = &ConsolePolicy{MaxSessions: 1}, &ConsolePolicy{MaxSessions: 2}
	if got := Diff(a, b); len(got) != 1 || got[0] != (Change{"console.max_sessions", "1", "2"}) {
		t.Errorf("console field: %v", got)
	}
}

func TestFormatChanges(t *testing.T) {
	for _, tc := range []struct {
		in   []Change
		want string
	}{
		{nil, "no change"},
		{[]Change{{"vcpus", "1", "2"}}, "vcpus: 1 → 2"},
		{[]Change{{"disks[1]", "", `{"path":"/x"}`}, {"disks[0]", `{"path":"/y"}`, ""}},
			`disks[1]: (none) → {"path":"/x"}; disks[0]: {"path":"/y"} → (none)`},
	} {
		if got := FormatChanges(tc.in); got != tc.want {
			t.Errorf("FormatChanges(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPatchApply(t *testing.T) {
	old := Spec{Name: "web", VCPUs: 1, MemoryMiB: 64, Kernel: "/k", Initrd: "/i", Accel: "auto",
		NICs: []NIC{{MAC: "52:54:00:00:00:01", Network: "lab", Groups: []string{"a"}}, {MAC: "52:54:00:00:00:02"}}}
	two, zero, empty := 2, 0, ""
	groups := []string{"b", "c"}
	t.Run("fields", func(t *testing.T) {
		s, err := Patch{VCPUs: &two, Initrd: &empty}.Apply(old)
		if err != nil || s.VCPUs != 2 || s.Initrd != "" || s.MemoryMiB != 64 || s.Kernel != "/k" {
			t.Fatalf("Apply = %+v, %v", s, err)
		}
	})
	t.Run("nic groups leave the old spec alone", func(t *testing.T) {
		s, err := Patch{NICGroups: []NICGroups{{NIC: 0, Groups: groups}}}.Apply(old)
		if err != nil || !reflect.DeepEqual(s.NICs[0].Groups, groups) || !reflect.DeepEqual(old.NICs[0].Groups, []string{"a"}) {
			t.Fatalf("Apply = %+v, %v; old %+v", s.NICs, err, old.NICs)
		}
		if d := Diff(old, s); len(d) != 1 || !LiveChange(d[0]) {
			t.Errorf("diff %v: want one live change", d)
		}
	})
	t.Run("new NIC gets a MAC", func(t *testing.T) {
		nics := []NIC{{}}
		s, err := Patch{NICs: &nics}.Apply(old)
		if err != nil || len(s.NICs) != 1 || s.NICs[0].MAC == "" || nics[0].MAC != "" {
			t.Fatalf("Apply = %+v, %v", s.NICs, err)
		}
	})
	for _, tc := range []struct {
		name  string
		p     Patch
		field string
	}{
		{"index out of range", Patch{NICGroups: []NICGroups{{NIC: 2}}}, "nic_groups[0].nic"},
		{"negative index", Patch{NICGroups: []NICGroups{{NIC: -1}}}, "nic_groups[0].nic"},
		{"twice", Patch{NICGroups: []NICGroups{{NIC: 1}, {NIC: 1}}}, "nic_groups[1].nic"},
		{"with nics", Patch{NICs: &[]NIC{}, NICGroups: []NICGroups{{NIC: 0}}}, "nic_groups"},
		{"vcpus zero is not the default here", Patch{VCPUs: &zero}, "vcpus"},
	} {
		_, err := tc.p.Apply(old)
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("%s: %v, want a FieldError on %s", tc.name, err, tc.field)
		}
	}
}

func TestLiveChange(t *testing.T) {
	for f, want := range map[string]bool{
		"nics[0].groups": true, "nics[12].groups": true,
		"nics[0].network": false, "nics[0]": false, "memory_mib": false, "disks[0].path": false,
	} {
		if got := LiveChange(Change{Field: f}); got != want {
			t.Errorf("LiveChange(%s) = %v", f, got)
		}
	}
}
