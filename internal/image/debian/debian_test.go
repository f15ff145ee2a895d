package debian

import (
	"testing"
	"time"
)

func TestCacheKey(t *testing.T) {
	base, err := Options{StoreDir: "/x", Packages: []string{"nginx"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	arch := map[string]string{"bookworm": "aa", "bookworm-updates": "bb"}
	k := cacheKey(base, 100, arch)
	// Package order and duplicates do not matter.
	same := base
	same.Packages = []string{"nginx", "systemd", "nginx"}
	if cacheKey(same, 100, map[string]string{"bookworm-updates": "bb", "bookworm": "aa"}) != k {
		t.Error("same inputs, different key")
	}
	for name, o := range map[string]Options{
		"packages":  func() Options { o := base; o.Packages = []string{"nginx", "openssh-server"}; return o }(),
		"mirror":    func() Options { o := base; o.Mirror = "http://mirror.example/debian"; return o }(),
		"disk size": func() Options { o := base; o.DiskSize = 4 << 30; return o }(),
		"format":    func() Options { o := base; o.Format = "raw"; return o }(),
	} {
		if cacheKey(o, 100, arch) == k {
			t.Errorf("%s change keeps the key", name)
		}
	}
	if cacheKey(base, 101, arch) == k {
		t.Error("SOURCE_DATE_EPOCH change keeps the key")
	}
	if cacheKey(base, 100, map[string]string{"bookworm": "aa", "bookworm-updates": "cc"}) == k {
		t.Error("archive change keeps the key")
	}
}

func TestOptionsRefused(t *testing.T) {
	for name, o := range map[string]Options{
		"option-like package": {Packages: []string{"--root=/"}},
		"shell in package":    {Packages: []string{"nginx;reboot"}},
		"suite with slash":    {Suite: "../bookworm"},
		"mirror not http":     {Mirror: "file:///etc"},
		"mirror with space":   {Mirror: "http://x y"},
		"format":              {Format: "vmdk"},
		"tiny disk":           {DiskSize: 1 << 20},
	} {
		o.StoreDir = "/x"
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReleaseDate(t *testing.T) {
	d, err := releaseDate([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nOrigin: Debian\nDate: Sat, 17 May 2025 09:08:27 UTC\nSuite: stable\n"))
	if err != nil || !d.Equal(time.Date(2025, 5, 17, 9, 8, 27, 0, time.UTC)) {
		t.Fatalf("%v %v", d, err)
	}
	if _, err := releaseDate([]byte("Origin: Debian\n")); err == nil {
		t.Fatal("no Date accepted")
	}
}

func TestFSUUIDStable(t *testing.T) {
	o, _ := Options{StoreDir: "/x"}.withDefaults()
	a, b := fsUUID(o, 1), fsUUID(o, 1)
	if a != b || len(a) != 36 || a[14] != '4' {
		t.Fatalf("%s %s", a, b)
	}
	if fsUUID(o, 2) == a {
		t.Fatal("uuid ignores SOURCE_DATE_EPOCH")
	}
}
