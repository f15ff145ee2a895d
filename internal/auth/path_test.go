package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	long := "/vms/" + strings.Repeat("a", 63)
	tests := []struct {
		in        string
		wantErr   string // substring of the error; "" for a valid path
		traversal bool
	}{
		{"/", "", false},
		{"/vms", "", false},
		{"/vms/web1", "", false},
		{"/pools/prod", "", false},
		{"/networks/n1", "", false},
		{"/security-groups/web-tier", "", false},
		{"/ip-sets/blocked", "", false},
		{"/users/u1", "", false},
		{"/groups/ops", "", false},
		{"/roles/r1", "", false},
		{"/audit", "", false},
		{"/attestation", "", false},
		{"/pools/prod/vms/web1", "", false},
		{"/storage/default", "", false},
		{"/storage/default/volumes/web", "", false},
		{"/storage/default/web", "segment 3: not a collection", false},
		{"/vms/vms", "", false}, // a VM may be called "vms"
		{"/vms/0", "", false},
		{long, "", false},
		{"/pools/a/pools/b/pools/c/pools/d", "", false},

		{"", "empty", false},
		{"vms/web1", "must start with '/'", false},
		{"//", "trailing '/'", false},
		{"/vms/", "trailing '/'", false},
		{"/vms//web1", "segment 2: empty segment", false},
		{"//vms", "segment 1: empty segment", false},
		{"/..", "segment 1: '.' or '..'", true},
		{"/vms/..", "segment 2: '.' or '..'", true},
		{"/vms/../users/root", "segment 2: '.' or '..'", true},
		{"/vms/./web1", "segment 2: '.' or '..'", true},
		{"/vms/web1/../../", "trailing '/'", false},
		{"/vms/web1/..", "segment 3: '.' or '..'", true},
		{"/vms/...", "segment 2: must be lower-case", false},
		{"/vms/%2e%2e", "segment 2: must be lower-case", false},
		{`/vms/..\..`, "segment 2: must be lower-case", false},
		{"/vms/web1\x00", "segment 2: must be lower-case", false},
		{"/vms/web1\n", "segment 2: must be lower-case", false},
		{"/VMS/web1", "segment 1: must be lower-case", false},
		{"/vms/Web1", "segment 2: must be lower-case", false},
		{"/vms/-web", "segment 2: must be lower-case", false},
		{"/vms/web-", "segment 2: must be lower-case", false},
		{"/vms/web_1", "segment 2: must be lower-case", false},
		{"/vms/wéb", "segment 2: non-ASCII byte", false},
		{"/vms/web\u200b1", "segment 2: non-ASCII byte", false},
		{"/vms/web 1", "segment 2: must be lower-case", false},
		{"/vm/web1", "segment 1: not a collection", false},
		{"/web1", "segment 1: not a collection", false},
		{"/vms/web1/console", "segment 3: not a collection", false},
		{"/vms/" + strings.Repeat("a", 64), "segment 2: longer than 63", false},
		{"/" + strings.Repeat("pools/abcdefghijklmnopqrstuvwxyz/", 8) + "pools", "longer than 255 bytes", false},
		{"/pools/a/pools/b/pools/c/pools/d/pools", "segment 9: more than 8 segments", false},
	}
	for _, tt := range tests {
		got, err := CanonicalPath(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.in {
				t.Errorf("CanonicalPath(%q) = %q, %v; want it unchanged", tt.in, got, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("CanonicalPath(%q) = %q, want an error containing %q", tt.in, got, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("CanonicalPath(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
		}
		var pe *PathError
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPath) {
			t.Errorf("CanonicalPath(%q): error %T is not a *PathError / ErrInvalidPath", tt.in, err)
		}
		if errors.Is(err, ErrPathTraversal) != tt.traversal {
			t.Errorf("CanonicalPath(%q): errors.Is(ErrPathTraversal) = %v, want %v", tt.in, !tt.traversal, tt.traversal)
		}
	}
}

func TestPathErrorIsSafeToLog(t *testing.T) {
	_, err := CanonicalPath("/vms/\x1b[31mred\n" + strings.Repeat("x", 1000))
	msg := err.Error()
	if strings.ContainsAny(msg, "\x1b\n") {
		t.Errorf("error message carries control characters: %q", msg)
	}
	if len(msg) > 400 {
		t.Errorf("error message is %d bytes; the input should be cut", len(msg))
	}
}

func TestCanonicalPathNoAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := CanonicalPath("/pools/prod/vms/web1"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("CanonicalPath allocates %v times per valid path", allocs)
	}
}

func TestParentPath(t *testing.T) {
	for in, want := range map[string]string{
		"/vms/web1":            "/vms",
		"/vms":                 "/",
		"/pools/prod/vms/web1": "/pools/prod/vms",
	} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCanonicalPath checks the properties access control relies on: an
// accepted path is returned unchanged, is short, ASCII, and cannot navigate;
// a rejected one gives a *PathError.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/vms/web1", "/vms/../x", "//", "/vms/", "/pools/p/vms/v",
		"/vms/%2e%2e", "/VMS", "/vms/wéb", "", "vms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := CanonicalPath(in)
		if err != nil {
			var pe *PathError
			if !errors.As(err, &pe) || got != "" {
				t.Fatalf("CanonicalPath(%q) = %q, %v (%T)", in, got, err, err)
			}
			return
		}
		if got != in {
			t.Fatalf("CanonicalPath(%q) rewrote it to %q", in, got)
		}
		if len(got) > MaxPathLen || got[0] != '/' || (got != "/" && strings.HasSuffix(got, "/")) {
			t.Fatalf("accepted %q", got)
		}
		segs := strings.Split(got, "/")[1:]
		if got == "/" {
			segs = nil
		}
		if len(segs) > MaxPathDepth {
			t.Fatalf("accepted %q with %d segments", got, len(segs))
		}
		for i, s := range segs {
			if s == "" || s == "." || s == ".." || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
				t.Fatalf("accepted %q with segment %q", got, s)
			}
			if i%2 == 0 && !collections[s] {
				t.Fatalf("accepted %q: %q is not a collection", got, s)
			}
		}
		// Walking up from an accepted path stays on accepted paths.
		for p := got; p != "/"; {
			p = parentPath(p)
			if _, err := CanonicalPath(p); err != nil {
				t.Fatalf("parent %q of %q rejected: %v", p, got, err)
			}
		}
	})
}
