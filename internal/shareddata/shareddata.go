// Package shareddata finds the project's shared test data (ET Open rules,
// suricata-verify cases): data the issues point to and tests read in
// place, never copied into the repository.
package shareddata

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// EnvVar names a directory that holds the data (et-open/,
// suricata-verify/), overriding the search.
const EnvVar = "BULWARK_SHARED_DATA"

// Dir returns the directory of the shared data set sub ("et-open",
// "suricata-verify"). It looks at $BULWARK_SHARED_DATA, then for
// shared/data next to the repository and next to each directory above it,
// then at /work/shared/data (where the build machines keep it).
func Dir(sub string) (string, error) {
	var tried []string
	try := func(base string) (string, bool) {
		p := filepath.Join(base, sub)
		tried = append(tried, p)
		fi, err := os.Stat(p)
		return p, err == nil && fi.IsDir()
	}
	if d := os.Getenv(EnvVar); d != "" {
		if p, ok := try(d); ok {
			return p, nil
		}
	}
	_, file, _, _ := runtime.Caller(0)
	// This file is internal/shareddata/shareddata.go in the repository.
	dir := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	for {
		if p, ok := try(filepath.Join(filepath.Dir(dir), "shared", "data")); ok {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if p, ok := try("/work/shared/data"); ok {
		return p, nil
	}
	return "", errors.New("shared test data " + sub + " not found; looked at " + joinPaths(tried) + " (set " + EnvVar + ")")
}

func joinPaths(ps []string) string {
	out := ""
	for i, p := range ps {
		if i > 0 {
			out += ", "
		}
		out += p
	}
	return out
}
