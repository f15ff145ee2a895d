package storage

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/vm"
)

func TestSnapshotPlan(t *testing.T) {
	tests := []struct {
		desc  string
		disks []vm.Disk
		want  []int
		err   string
	}{
		{"volumes", []vm.Disk{{Volume: "default/a"}, {Volume: "default/b"}}, []int{0, 1}, ""},
		{"read-only volume recorded as is", []vm.Disk{{Volume: "default/a"}, {Volume: "default/seed", ReadOnly: true}}, []int{0}, ""},
		{"read-only host path recorded as is", []vm.Disk{{Volume: "default/a"}, {Path: "/img/ud", ReadOnly: true}}, []int{0}, ""},
		{"read-write host path", []vm.Disk{{Volume: "default/a"}, {Path: "/srv/x.raw"}}, nil, "disks[1] is the host path /srv/x.raw attached read-write"},
		{"nothing to freeze", []vm.Disk{{Volume: "default/a", ReadOnly: true}}, nil, "nothing to freeze"},
		{"no disks", nil, nil, "nothing to freeze"},
	}
	for _, tc := range tests {
		got, err := SnapshotPlan(vm.Spec{Name: "web", Disks: tc.disks})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrConflict) {
				t.Errorf("%s: err %v, want conflict with %q", tc.desc, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.desc, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.desc, got, tc.want)
			}
		}
	}
}

func TestSnapshotNames(t *testing.T) {
	for _, n := range []string{"", "A", "a/b", "..", "a b", "-a", "a-", strings.Repeat("a", 64), "a,b"} {
		if ValidateSnapshotName(n) == nil {
			t.Errorf("snapshot name %q accepted", n)
		}
	}
	for _, n := range []string{"s1", "before-upgrade", strings.Repeat("a", 63)} {
		if err := ValidateSnapshotName(n); err != nil {
			t.Errorf("snapshot name %q: %v", n, err)
		}
	}
	none := func(string) bool { return false }
	if got := frozenName("web", "s1", "abcd", none); got != "web-snap-s1" {
		t.Errorf("frozenName: %q", got)
	}
	if got := frozenName("web", "s1", "abcd", func(n string) bool { return n == "web-snap-s1" }); got != "web-snap-abcd" {
		t.Errorf("frozenName, taken: %q", got)
	}
	long := strings.Repeat("v", 50)
	got := frozenName(long, strings.Repeat("s", 30), "abcd", none)
	if ValidateName("volume", got) != nil || !strings.HasSuffix(got, "-snap-abcd") {
		t.Errorf("frozenName, too long: %q", got)
	}
}

func TestPlanSnapshotDelete(t *testing.T) {
	snap := func(name string, layers ...string) Snapshot {
		s := Snapshot{VM: "web", Name: name}
		for i, l := range layers {
			s.Disks = append(s.Disks, SnapshotDisk{Disk: i, Volume: "p/top" + string(rune('0'+i)), Layers: []LayerDigest{{Volume: l}}})
		}
		s.Disks = append(s.Disks, SnapshotDisk{Disk: len(layers), Volume: "p/seed", ReadOnly: true})
		return s
	}
	vols := func(kv ...string) []Volume { // name, base pairs
		var out []Volume
		for i := 0; i < len(kv); i += 2 {
			out = append(out, Volume{Pool: "p", Name: kv[i], Base: kv[i+1]})
		}
		return out
	}
	tops := map[int]string{0: "p/top0", 1: "p/top1"}
	tests := []struct {
		desc string
		s    Snapshot
		vols []Volume
		live bool
		want []DeleteAction
		err  string
	}{
		{"newest: merge the top", snap("s1", "p/l1"), vols("l1", "", "top0", "l1"), false,
			[]DeleteAction{{Layer: "p/l1", Merge: "p/top0"}}, ""},
		{"newest, running", snap("s1", "p/l1"), vols("l1", "", "top0", "l1"), true, nil, "stop the VM first"},
		{"nothing depends: remove", snap("s2", "p/l2"), vols("l1", "", "l2", "l1", "top0", "l1"), true,
			[]DeleteAction{{Layer: "p/l2"}}, ""},
		{"a later snapshot depends", snap("s1", "p/l1"), vols("l1", "", "l2", "l1", "top0", "l2"), false, nil, "is the base of p/l2"},
		{"a restored VM depends", snap("s1", "p/l1"), vols("l1", "", "top0", "l1", "copy-disk0", "l1"), false, nil, "p/copy-disk0, p/top0"},
		{"two disks", snap("s1", "p/l1", "p/m1"), vols("l1", "", "m1", "", "top0", "l1", "top1", "m1"), false,
			[]DeleteAction{{Layer: "p/l1", Merge: "p/top0"}, {Layer: "p/m1", Merge: "p/top1"}}, ""},
		{"top of another disk is not ours", snap("s1", "p/l1"), vols("l1", "", "top1", "l1"), false, nil, "only the newest snapshot"},
	}
	for _, tc := range tests {
		got, err := PlanSnapshotDelete(tc.s, tops, tc.vols, tc.live)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrConflict) {
				t.Errorf("%s: err %v, want conflict with %q", tc.desc, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.desc, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.desc, got, tc.want)
			}
		}
	}
}

func TestVerifyReportErr(t *testing.T) {
	r := VerifyReport{Snapshot: "web/s1", OK: false, Mismatches: []DigestMismatch{{Volume: "p/l1", Recorded: "aa", Actual: "bb"}}}
	err := r.Err()
	if err == nil || !errors.Is(err, ErrTampered) || !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "layer p/l1: SHA-256 is bb, the snapshot recorded aa") {
		t.Errorf("Err: %v", err)
	}
	if (VerifyReport{OK: true}).Err() != nil {
		t.Error("clean report has an error")
	}
}
