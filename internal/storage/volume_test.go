package storage

import (
	"errors"
	"testing"
)

func TestNames(t *testing.T) {
	for _, n := range []string{"web", "web-1", "a", "0db"} {
		if err := ValidateName("name", n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", "../x", "a/b", ".", "..", "-a", "a-", "A", "web.qcow2", "a b", "a,b", "x\x00", "/etc/shadow", string(make([]byte, 64))} {
		if err := ValidateName("name", n); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", n, err)
		}
	}
	if p, n, err := ParseRef("default/web"); err != nil || p != "default" || n != "web" {
		t.Errorf("ParseRef = %q %q %v", p, n, err)
	}
	for _, r := range []string{"web", "default/../etc", "default/a/b", "/web", "default/"} {
		if _, _, err := ParseRef(r); err == nil {
			t.Errorf("ParseRef(%q) accepted", r)
		}
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "8G": 8 << 30, "8GiB": 8 << 30, "512M": 512 << 20, "1T": 1 << 40, "64k": 64 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "1.5G", "99999999999999999999", "1P", "0x10"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	for _, s := range []int64{0, 1, MinVolumeSize - 512, MinVolumeSize + 1, MaxVolumeSize + 512} {
		if ValidateSize(s) == nil {
			t.Errorf("ValidateSize(%d) accepted", s)
		}
	}
	v := Volume{Pool: "default", Name: "web", Size: 8 << 30}
	if err := CheckResize(v, 4<<30, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("shrink: %v", err)
	}
	if err := CheckResize(v, 16<<30, 1); !errors.Is(err, ErrConflict) {
		t.Errorf("base with clones: %v", err)
	}
	if err := CheckResize(v, 16<<30, 0); err != nil {
		t.Errorf("grow: %v", err)
	}
}

func TestCheckSpace(t *testing.T) {
	tests := []struct {
		free, need, reserve uint64
		ok                  bool
	}{
		{100, 10, 10, true},
		{100, 90, 10, true},
		{100, 91, 10, false},
		{100, 101, 0, false},
		{0, 0, 0, true},
		{10, 1 << 63, 0, false},
	}
	for _, tc := range tests {
		err := CheckSpace("p", tc.free, tc.need, tc.reserve)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrNoSpace) {
			t.Errorf("CheckSpace(%d, %d, %d) = %v", tc.free, tc.need, tc.reserve, err)
		}
	}
}

func TestDigest(t *testing.T) {
	good := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if err := ValidateDigest(good); err != nil {
		t.Error(err)
	}
	for _, d := range []string{"", good[:63], good + "0", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "sha256:" + good[:57]} {
		if ValidateDigest(d) == nil {
			t.Errorf("%q accepted", d)
		}
	}
}
