// Package benchrun is what every bench/ program does around its
// measurements: build the bulwark binary of the enclosing module, run a
// command quietly, read the tail of a log for an error message, and
// summarize samples.
package benchrun

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// ModuleDir is the directory of the enclosing Go module (where go.mod is),
// or "" outside one.
func ModuleDir() string {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return ""
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return ""
	}
	return filepath.Dir(mod)
}

// BuildBulwark builds ./cmd/bulwark of the enclosing module into out and
// describes the source revision it built.
func BuildBulwark(ctx context.Context, out string) (string, error) {
	dir := ModuleDir()
	if dir == "" {
		return "", errors.New("run from inside the bulwark module, or pass -bin")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/bulwark")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, b)
	}
	source := "working tree"
	if b, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--short", "HEAD").Output(); err == nil {
		source = "git " + strings.TrimSpace(string(b))
		if st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			source += " + uncommitted changes"
		}
	}
	return source, nil
}

// RunQuiet runs bin with args and returns its output only in the error.
func RunQuiet(ctx context.Context, bin string, args ...string) error {
	if b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, b)
	}
	return nil
}

// Tail returns up to max trailing bytes of a file, or "" if it cannot be
// read.
func Tail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, 0)
	}
	b := make([]byte, max)
	n, _ := f.Read(b)
	return strings.TrimSpace(string(b[:n]))
}

// Dist summarizes a sample.
type Dist struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Mean   float64 `json:"mean"`
	P90    float64 `json:"p90"` // nearest rank: the maximum when n < 10
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Stdev  float64 `json:"stdev"` // sample standard deviation (n-1)
}

// Summarize returns the distribution of xs (the zero Dist when empty).
func Summarize(xs []float64) Dist {
	if len(xs) == 0 {
		return Dist{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	d := Dist{N: len(s), Min: s[0], Max: s[len(s)-1]}
	if len(s)%2 == 1 {
		d.Median = s[len(s)/2]
	} else {
		d.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	d.P90 = s[int(math.Ceil(0.9*float64(len(s))))-1]
	for _, x := range s {
		d.Mean += x
	}
	d.Mean /= float64(len(s))
	if len(s) > 1 {
		var v float64
		for _, x := range s {
			v += (x - d.Mean) * (x - d.Mean)
		}
		d.Stdev = math.Sqrt(v / float64(len(s)-1))
	}
	return d
}
