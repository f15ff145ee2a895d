package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
)

// Bounds for ParseModulesDep. A real modules.dep has a few thousand lines of
// well under 1 KiB each; the limits only exist so a corrupt or hostile file
// cannot make the image builder allocate without bound.
const (
	maxDepLineLen = 64 << 10
	maxDepEntries = 100000
)

// moduleExts lists the file suffixes kmod produces, longest first so that
// ".ko.gz" is not mistaken for ".ko".
var moduleExts = []string{".ko.zst", ".ko.xz", ".ko.gz", ".ko"}

// ParseModulesDep parses a kmod modules.dep file. The result maps each
// module path (relative to the kernel's modules directory, exactly as written
// in the file) to the paths of the modules it depends on. Blank lines are
// ignored; anything else that is not "path: [dep ...]" is an error naming the
// line.
func ParseModulesDep(r io.Reader) (map[string][]string, error) {
	sc := bufio.NewScanner(r)
	// One extra byte so a line of exactly maxDepLineLen still fits together
	// with its newline; longer lines surface as bufio.ErrTooLong.
	sc.Buffer(make([]byte, 0, 4096), maxDepLineLen+1)
	deps := make(map[string][]string)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if len(text) > maxDepLineLen {
			return nil, fmt.Errorf("modules.dep line %d: longer than %d bytes", line, maxDepLineLen)
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		if len(deps) >= maxDepEntries {
			return nil, fmt.Errorf("modules.dep line %d: more than %d entries", line, maxDepEntries)
		}
		mod, list, err := parseDepLine(string(text))
		if err != nil {
			return nil, fmt.Errorf("modules.dep line %d: %w", line, err)
		}
		if _, dup := deps[mod]; dup {
			return nil, fmt.Errorf("modules.dep line %d: duplicate entry for %q", line, mod)
		}
		deps[mod] = list
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("modules.dep line %d: longer than %d bytes", line+1, maxDepLineLen)
		}
		return nil, fmt.Errorf("modules.dep line %d: %w", line+1, err)
	}
	return deps, nil
}

func parseDepLine(text string) (string, []string, error) {
	mod, rest, ok := strings.Cut(text, ":")
	if !ok {
		return "", nil, errors.New("missing ':' separator")
	}
	mod = strings.TrimSpace(mod)
	if err := checkModulePath(mod); err != nil {
		return "", nil, err
	}
	list := strings.Fields(rest)
	for _, d := range list {
		if err := checkModulePath(d); err != nil {
			return "", nil, fmt.Errorf("dependency of %s: %w", mod, err)
		}
	}
	if list == nil {
		list = []string{}
	}
	return mod, list, nil
}

// checkModulePath insists on local, slash-separated paths: the builder joins
// them onto the modules directory, so "../" or absolute paths would let
// modules.dep pull arbitrary host files into the guest image.
func checkModulePath(p string) error {
	if p == "" {
		return errors.New("empty module path")
	}
	for _, c := range p {
		if !isModulePathChar(c) {
			return fmt.Errorf("invalid character %q in module path %q", c, p)
		}
	}
	if path.IsAbs(p) || p != path.Clean(p) || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("module path %q is not a clean relative path", p)
	}
	if ModuleName(p) == "" {
		return fmt.Errorf("%q is not a kernel module file (.ko, .ko.gz, .ko.xz, .ko.zst)", p)
	}
	return nil
}

// isModulePathChar is deliberately narrow: module names end up in a file that
// the guest's init script reads and passes to insmod.
func isModulePathChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.ContainsRune("._-/+", c)
}

// ModuleName returns the kernel's name for a module file: the basename without
// its .ko[.gz|.xz|.zst] suffix and with '-' normalised to '_', the same
// normalisation the kernel and modprobe apply. It returns "" for a path that
// is not a module file.
func ModuleName(p string) string {
	base := path.Base(p)
	for _, ext := range moduleExts {
		if name, ok := strings.CutSuffix(base, ext); ok && name != "" {
			return strings.ReplaceAll(name, "-", "_")
		}
	}
	return ""
}

// module is one entry of the resolved load list.
type module struct {
	Name string
	Path string // relative to the kernel's modules directory
}

// resolveModules computes the dependency closure of wanted and returns it in
// load order. With strict set, a wanted module that does not exist is an
// error; otherwise it is skipped, which lets DefaultModules list drivers that
// a given kernel builds in or lacks.
func resolveModules(deps map[string][]string, wanted []string, strict bool) ([]module, error) {
	byName := make(map[string]string, len(deps))
	for p := range deps {
		n := ModuleName(p)
		if other, dup := byName[n]; dup {
			a, b := min(p, other), max(p, other)
			return nil, fmt.Errorf("module %s provided by both %s and %s", n, a, b)
		}
		byName[n] = p
	}
	graph := make(map[string][]string)
	var missing []string
	var visit func(name string) error
	visit = func(name string) error {
		if _, done := graph[name]; done {
			return nil
		}
		p := byName[name]
		var names []string
		for _, d := range deps[p] {
			dn := ModuleName(d)
			if _, ok := byName[dn]; !ok {
				return fmt.Errorf("module %s depends on %s, which has no modules.dep entry", name, d)
			}
			names = append(names, dn)
		}
		graph[name] = names
		for _, dn := range names {
			if err := visit(dn); err != nil {
				return err
			}
		}
		return nil
	}
	for _, w := range wanted {
		n := strings.ReplaceAll(w, "-", "_")
		if _, ok := byName[n]; !ok {
			missing = append(missing, w)
			continue
		}
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	if strict && len(missing) > 0 {
		return nil, fmt.Errorf("requested modules not found in modules.dep: %s", strings.Join(missing, ", "))
	}
	order, err := topoSort(graph)
	if err != nil {
		return nil, err
	}
	out := make([]module, len(order))
	for i, n := range order {
		out[i] = module{Name: n, Path: byName[n]}
	}
	return out, nil
}

// topoSort orders graph (node -> dependencies) so every node follows its
// dependencies. Among nodes that are ready at the same time the
// lexicographically smallest goes first, so the order depends only on the
// graph and not on map iteration. Dependencies that are not themselves keys
// are ignored.
func topoSort(graph map[string][]string) ([]string, error) {
	pending := make(map[string]int, len(graph))
	users := make(map[string][]string)
	for n, ds := range graph {
		seen := make(map[string]bool, len(ds))
		for _, d := range ds {
			if _, ok := graph[d]; !ok || seen[d] {
				continue
			}
			seen[d] = true
			pending[n]++
			users[d] = append(users[d], n)
		}
	}
	var ready []string
	for n := range graph {
		if pending[n] == 0 {
			ready = append(ready, n)
		}
	}
	order := make([]string, 0, len(graph))
	for len(ready) > 0 {
		// ready is kept sorted in descending order so the smallest is at the end.
		sort.Sort(sort.Reverse(sort.StringSlice(ready)))
		n := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		order = append(order, n)
		for _, u := range users[n] {
			pending[u]--
			if pending[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	if len(order) != len(graph) {
		var cyc []string
		for n := range graph {
			if pending[n] > 0 {
				cyc = append(cyc, n)
			}
		}
		slices.Sort(cyc)
		return nil, fmt.Errorf("module dependency cycle: cannot order %s", strings.Join(cyc, ", "))
	}
	return order, nil
}
