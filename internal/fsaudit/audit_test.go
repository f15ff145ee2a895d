package fsaudit

import (
	"bufio"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/reviewed.txt: keep reasons, drop stale entries, add new call sites as TODO")

// reviewedFile is the list, relative to the module root.
const reviewedFile = "internal/fsaudit/testdata/reviewed.txt"

// watched lists, per import path, the functions whose call sites must be
// reviewed, and the name used for the package in keys.
var watched = map[string]struct {
	short string
	funcs []string
}{
	"os": {"os", []string{
		"Open", "OpenFile", "Create", "CreateTemp", "ReadFile", "WriteFile",
		"Remove", "RemoveAll", "Rename", "Chown", "Lchown", "Chmod", "Chtimes",
		"Mkdir", "MkdirAll", "MkdirTemp", "Symlink", "Link", "Truncate", "ReadDir",
	}},
	"net": {"net", []string{
		"Dial", "DialUnix", "DialTimeout", "Listen", "ListenUnix", "ListenUnixgram", "ListenPacket",
	}},
	"syscall": {"syscall", []string{
		"Open", "Openat", "Creat", "Mkfifo", "Mknod", "Mount", "Unlink", "Unlinkat", "Rmdir",
		"Rename", "Chown", "Lchown", "Chmod", "Link", "Symlink", "Truncate", "Bind", "Connect",
	}},
	"golang.org/x/sys/unix": {"unix", []string{
		"Open", "Openat", "Openat2", "Creat", "Mkfifo", "Mkfifoat", "Mknod", "Mknodat", "Mount",
		"Unlink", "Unlinkat", "Rmdir", "Rename", "Renameat", "Renameat2", "Chown", "Lchown",
		"Fchownat", "Chmod", "Fchmodat", "Mkdir", "Mkdirat", "Link", "Linkat", "Symlink",
		"Symlinkat", "Truncate", "Bind", "Connect",
	}},
}

// anyReceiver are method names flagged on any receiver (net.Dialer and
// friends), keyed as "*.Name".
var anyReceiver = map[string]bool{"DialContext": true}

// scanRoots are the trees scanned, relative to the module root; skipped
// are directories not scanned below them.
var (
	scanRoots = []string{"internal", "cmd"}
	skipped   = map[string]string{
		"internal/safefs":  "the safe implementation itself",
		"internal/itest":   "integration tests, never part of the daemon",
		"internal/fsaudit": "this test",
	}
)

// TestReviewed compares the risky call sites in the code with the list.
func TestReviewed(t *testing.T) {
	root := moduleRoot(t)
	found, err := scanTree(root)
	if err != nil {
		t.Fatal(err)
	}
	listPath := filepath.Join(root, filepath.FromSlash(reviewedFile))
	list, err := readReviewed(listPath)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		list = merge(list, found)
		if err := os.WriteFile(listPath, []byte(formatReviewed(list)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d entries", listPath, len(list))
	}
	for _, p := range compare(list, found) {
		t.Error(p)
	}
	unsafe := 0
	for _, e := range list {
		if strings.HasPrefix(e.reason, "UNSAFE") {
			unsafe++
		}
	}
	if unsafe > 0 {
		t.Logf("%d call site(s) marked UNSAFE, waiting to be replaced", unsafe)
	}
}

// entry is one line of the reviewed list.
type entry struct {
	key    string // "file.go Func pkg.Call"
	count  int
	reason string
}

func (e entry) line() string {
	s := e.key
	if e.count != 1 {
		s += " x" + strconv.Itoa(e.count)
	}
	return s + " — " + e.reason
}

const todo = "TODO: review"

// compare returns one message per problem: unreviewed call sites, changed
// counts, stale entries and unfinished reasons.
func compare(list []entry, found map[string]int) []string {
	var probs []string
	seen := map[string]bool{}
	for _, e := range list {
		if seen[e.key] {
			probs = append(probs, fmt.Sprintf("%s: listed twice", e.key))
		}
		seen[e.key] = true
		n, ok := found[e.key]
		switch {
		case !ok:
			probs = append(probs, fmt.Sprintf("stale entry, the call is gone: remove this line from %s:\n\t%s", reviewedFile, e.line()))
		case n > e.count:
			probs = append(probs, fmt.Sprintf("%s: %d call sites, %d reviewed: review the new one(s) and update the line to\n\t%s",
				e.key, n, e.count, entry{e.key, n, e.reason}.line()))
		case n < e.count:
			probs = append(probs, fmt.Sprintf("%s: %d call sites, %d listed: update the line to\n\t%s",
				e.key, n, e.count, entry{e.key, n, e.reason}.line()))
		}
		if strings.HasPrefix(e.reason, "TODO") || strings.TrimSpace(e.reason) == "" {
			probs = append(probs, fmt.Sprintf("%s: no reason yet: replace %q with why the call is safe", e.key, e.reason))
		}
	}
	var missing []string
	for k := range found {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		probs = append(probs, fmt.Sprintf("unreviewed file-system or socket call: if it is safe, add to %s\n\t%s\n"+
			"where <reason> says why (\"path is in the root-owned state directory\", \"CLI-side, runs as the invoking user\"),\n"+
			"or run go test ./internal/fsaudit -run TestReviewed -update and replace the TODO it adds.\n"+
			"A call on a name in a directory a VM's uid can write (its run directory) is not safe: use internal/safefs.",
			reviewedFile, entry{k, found[k], "<reason>"}.line()))
	}
	return probs
}

// merge is the list -update writes: reasons kept, stale entries dropped,
// new keys and keys with more call sites than reviewed marked TODO.
func merge(list []entry, found map[string]int) []entry {
	old := map[string]entry{}
	for _, e := range list {
		old[e.key] = e
	}
	var out []entry
	for k, n := range found {
		e, ok := old[k]
		switch {
		case !ok:
			e = entry{k, n, todo}
		case n > e.count:
			e = entry{k, n, fmt.Sprintf("%s (was x%d: %s)", todo, e.count, e.reason)}
		default:
			e.count = n
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

const header = `# File-system and socket call sites in daemon-side code, each reviewed.
# Checked by internal/fsaudit (go test ./internal/fsaudit); see its doc.go.
#
# Format: <file> <function> <call> [xN] — <why it is safe>
# <function> is the enclosing function or Recv.Method ("-" at package level);
# xN when the same call appears N times in that function.
# Calls on names in a directory a VM's uid can write must use internal/safefs.
`

func formatReviewed(list []entry) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\n")
	for _, e := range list {
		b.WriteString(e.line())
		b.WriteString("\n")
	}
	return b.String()
}

// readReviewed parses the list; a missing file is an empty list.
func readReviewed(path string) ([]entry, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var list []entry
	sc := bufio.NewScanner(f)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, ln, err)
		}
		list = append(list, e)
	}
	return list, sc.Err()
}

func parseEntry(line string) (entry, error) {
	left, reason, ok := strings.Cut(line, " — ")
	if !ok {
		left, reason, ok = strings.Cut(line, " -- ")
	}
	if !ok {
		return entry{}, fmt.Errorf("no \" — \" before the reason: %q", line)
	}
	f := strings.Fields(left)
	e := entry{count: 1, reason: strings.TrimSpace(reason)}
	switch {
	case len(f) == 4 && strings.HasPrefix(f[3], "x"):
		n, err := strconv.Atoi(f[3][1:])
		if err != nil || n < 2 {
			return entry{}, fmt.Errorf("bad count %q: %q", f[3], line)
		}
		e.count = n
	case len(f) != 3:
		return entry{}, fmt.Errorf("want <file> <function> <call> [xN] — <reason>: %q", line)
	}
	e.key = strings.Join(f[:3], " ")
	return e, nil
}

// scanTree returns the watched call sites below the scan roots of the
// module at root, counted by key.
func scanTree(root string) (map[string]int, error) {
	found := map[string]int{}
	for _, r := range scanRoots {
		err := filepath.WalkDir(filepath.Join(root, r), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if _, skip := skipped[rel]; skip || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			keys, err := scanFile(rel, src)
			if err != nil {
				return err
			}
			for k, n := range keys {
				found[k] += n
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return found, nil
}

// scanFile returns the watched call sites in one file, counted by key.
// Every use of a watched function counts, not only calls: a function value
// such as "defer cleanup(os.Remove)" is as risky as a call.
func scanFile(rel string, src []byte) (map[string]int, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, rel, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	pkgs := map[string]string{} // local name -> short name
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		w, ok := watched[path]
		if !ok {
			continue
		}
		local := w.short
		if imp.Name != nil {
			local = imp.Name.Name
		}
		switch local {
		case "_":
			continue
		case ".":
			return nil, fmt.Errorf("%s: dot import of %q hides its calls from this audit", rel, path)
		}
		pkgs[local] = w.short
	}
	found := map[string]int{}
	record := func(fn string, n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			name := sel.Sel.Name
			if id, ok := sel.X.(*ast.Ident); ok {
				if short, ok := pkgs[id.Name]; ok && isWatched(short, name) {
					found[rel+" "+fn+" "+short+"."+name]++
					return true
				}
			}
			if anyReceiver[name] {
				found[rel+" "+fn+" *."+name]++
			}
			return true
		})
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			record(funcName(fd), fd)
			continue
		}
		record("-", d)
	}
	return found, nil
}

func isWatched(short, name string) bool {
	for _, w := range watched {
		if w.short != short {
			continue
		}
		for _, f := range w.funcs {
			if f == name {
				return true
			}
		}
	}
	return false
}

// funcName is "Func" or "Recv.Method", without pointer or type parameters.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.IndexExpr:
			t = x.X
			continue
		case *ast.IndexListExpr:
			t = x.X
			continue
		case *ast.ParenExpr:
			t = x.X
			continue
		case *ast.Ident:
			return x.Name + "." + fd.Name.Name
		}
		return "?." + fd.Name.Name
	}
}

// moduleRoot is the directory holding go.mod, above the test's directory.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}
