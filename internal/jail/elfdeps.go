package jail

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Bounds on the dependency walk: ELF files are trusted host binaries, but a
// broken installation must give an error, not a runaway walk.
const (
	maxLibraries = 512
	maxLdConf    = 64
)

// ProgramBinds returns read-only, executable binds for each file (a program
// or a loadable module), its ELF interpreter and the closure of its shared
// libraries, found the way the dynamic loader finds them (RUNPATH/RPATH
// with $ORIGIN, the ld.so.conf directories, the default directories), plus
// /etc/ld.so.cache and the host's top-level symlinks (/lib -> usr/lib on a
// merged-/usr system). Each file is bound at its path with the directory
// part resolved, so the loader's paths resolve inside the jail as on the
// host. Data files (firmware) go through DataBinds instead.
func ProgramBinds(files ...string) ([]Bind, []Symlink, error) {
	w := &depWalk{seen: map[string]bool{}, dirs: ldConfDirs("/etc/ld.so.conf", 0)}
	for _, f := range files {
		if err := w.add(f, true); err != nil {
			return nil, nil, err
		}
	}
	binds := w.binds
	if fi, err := os.Stat("/etc/ld.so.cache"); err == nil && fi.Mode().IsRegular() {
		binds = append(binds, Bind{Path: "/etc/ld.so.cache"})
	}
	sort.Slice(binds, func(i, j int) bool { return binds[i].Path < binds[j].Path })
	return binds, TopLevelSymlinks(), nil
}

// DataBinds returns read-only, non-executable binds for data files that
// exist (missing ones are skipped: which firmware a distribution ships
// varies).
func DataBinds(files ...string) []Bind {
	var out []Bind
	for _, f := range files {
		p, err := resolvedDir(f)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			out = append(out, Bind{Path: p})
		}
	}
	return out
}

// TopLevelSymlinks mirrors the host's symlinked top-level directories.
func TopLevelSymlinks() []Symlink {
	var out []Symlink
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if t, err := os.Readlink(d); err == nil && !filepath.IsAbs(t) && !strings.Contains(t, "..") {
			out = append(out, Symlink{Path: d, Target: t})
		}
	}
	return out
}

type depWalk struct {
	seen  map[string]bool
	dirs  []string
	binds []Bind
}

// resolvedDir resolves the directory part of p but not its last element,
// which is where the jail will bind it.
func resolvedDir(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

func (w *depWalk) add(path string, top bool) error {
	p, err := resolvedDir(path)
	if err != nil {
		return fmt.Errorf("jail: %s: %w", path, err)
	}
	if w.seen[p] {
		return nil
	}
	if len(w.seen) >= maxLibraries {
		return fmt.Errorf("jail: more than %d shared libraries", maxLibraries)
	}
	w.seen[p] = true
	w.binds = append(w.binds, Bind{Path: p, Exec: true})
	f, err := elf.Open(p)
	if err != nil {
		if top {
			// Not ELF (a script): only the file itself is bound.
			return nil
		}
		return fmt.Errorf("jail: library %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return fmt.Errorf("jail: %s: interpreter: %w", p, err)
		}
		if err := w.add(strings.TrimRight(string(b), "\x00"), false); err != nil {
			return err
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil // static
	}
	var search []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, _ := f.DynString(tag)
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				search = append(search, strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", filepath.Dir(p)), "$ORIGIN", filepath.Dir(p)))
			}
		}
	}
	search = append(search, w.dirs...)
	search = append(search, "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
	for _, lib := range needed {
		found := ""
		for _, d := range search {
			c := filepath.Join(d, lib)
			if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && isELF64(c) {
				found = c
				break
			}
		}
		if found == "" {
			return fmt.Errorf("jail: %s needs %s, which is not in %v", p, lib, search)
		}
		if err := w.add(found, false); err != nil {
			return err
		}
	}
	return nil
}

func isELF64(p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Class == elf.ELFCLASS64 && f.Machine == elf.EM_X86_64
}

// ldConfDirs reads the directories of an ld.so.conf file, following its
// include lines (bounded).
func ldConfDirs(path string, depth int) []string {
	b, err := os.ReadFile(path)
	if err != nil || depth > 2 {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "include "):
			matches, _ := filepath.Glob(strings.TrimSpace(strings.TrimPrefix(line, "include ")))
			if len(matches) > maxLdConf {
				matches = matches[:maxLdConf]
			}
			for _, m := range matches {
				out = append(out, ldConfDirs(m, depth+1)...)
			}
		case filepath.IsAbs(line):
			out = append(out, line)
		}
	}
	return out
}
