package audit

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Error("second load returned a different key")
	}
	path := filepath.Join(dir, KeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("key mode %v, want 0600", m)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("key file is not PEM PKCS#8:\n%s", data)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".audit.key-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestLoadOrCreateKeyRace(t *testing.T) {
	dir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadOrCreateKey(dir)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i := range keys {
		if string(keys[i]) != string(keys[0]) {
			t.Fatalf("racing callers got different keys")
		}
	}
}

func TestLoadKeyRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir, path string)
		want  string
	}{
		{"group readable", func(t *testing.T, dir, path string) {
			if _, err := LoadOrCreateKey(dir); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o640)
		}, "mode 0640"},
		{"symlink", func(t *testing.T, dir, path string) {
			other := filepath.Join(t.TempDir(), "k")
			if _, err := LoadOrCreateKey(filepath.Dir(other)); err != nil {
				t.Fatal(err)
			}
			os.Symlink(filepath.Join(filepath.Dir(other), KeyFile), path)
		}, "too many levels of symbolic links"},
		{"directory", func(t *testing.T, dir, path string) {
			os.Mkdir(path, 0o700)
		}, "not a regular file"},
		{"garbage", func(t *testing.T, dir, path string) {
			os.WriteFile(path, []byte("not a key"), 0o600)
		}, "no PEM PRIVATE KEY block"},
		{"oversized", func(t *testing.T, dir, path string) {
			os.WriteFile(path, make([]byte, 1<<20), 0o600)
		}, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFile)
			tt.setup(t, dir, path)
			_, err := LoadOrCreateKey(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
