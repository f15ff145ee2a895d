package textcheck

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/attest"
)

// Limits of one check.
const (
	// MaxCompared bounds the code bytes compared for one process (QEMU
	// with its libraries is about 25 MiB). A process with more is reported
	// as an error, not as clean.
	MaxCompared = 256 << 20
	// MaxNotes bounds Result.Notes.
	MaxNotes = 64
	// chunk is the unit of reads from the file and from memory.
	chunk = 256 << 10
	// maxCached bounds the parsed objects a Checker keeps.
	maxCached = 1024
	// maxName bounds a name from maps in reports.
	maxName = 256
)

// Errors a caller may branch on (wrapped).
var (
	// ErrProcessGone: the process exited, or its PID now belongs to
	// another process, before or during the check.
	ErrProcessGone = errors.New("process is gone")
	// ErrBudget: the process maps more code than MaxCompared.
	ErrBudget = errors.New("code over the per-process compare limit")
)

// Kinds of identity findings: a TextMismatch of Length 0 whose Symbol
// starts with the kind in brackets.
const (
	KindWrongBinary  = "[wrong-binary]"
	KindUnverifiable = "[unverifiable-mapping]"
	KindTextMissing  = "[text-not-mapped]"
)

// Kinds of notes: executable memory the check cannot compare with a file
// and does not count as a mismatch.
const (
	NoteAnonymous   = "anonymous-exec"    // anonymous r-x/rwx memory: a JIT (TCG's code buffer) or injected code
	NoteMemfd       = "memfd-exec"        // executable memfd mapping (TCG split-wx; Bulwark does not enable it)
	NoteOutsideCode = "exec-outside-text" // a file's non-code bytes mapped executable; compared, but odd
	NotePastEOF     = "exec-past-eof"     // pages past the end of the file (unreadable: SIGBUS)
)

// Target is a process to check and the file its code must equal.
type Target struct {
	Process string // "daemon" or "qemu"
	VM      string // the VM of a QEMU process
	PID     int
	// StartTime is field 22 of /proc/PID/stat when the caller knows it
	// (vm.Runtime.StartTime): a PID reused by another process is then an
	// ErrProcessGone, not a check of the wrong process. 0: not checked.
	StartTime uint64
	// Binary is the expected executable's path, as reported.
	Binary string
	// File, if set, is the expected executable already open (the daemon
	// opens /proc/self/exe at start); otherwise Binary is opened. Check
	// does not close it.
	File *os.File
}

// Note is executable memory the check reports as information.
type Note struct {
	Kind       string
	Start, End uint64
	Perms      string
	Name       string // from maps, quoted and bounded: the process chose it
}

// Result is one check: the RuntimeCheck for the attestation report, and
// what only the daemon's log needs.
type Result struct {
	attest.RuntimeCheck
	// Omitted counts mismatches beyond the MaxReported listed.
	Omitted int
	// Masked counts bytes not compared because a dynamic relocation
	// writes them (0 for normal PIE code).
	Masked int64
	// Objects is the number of files whose code was compared.
	Objects int
	Notes   []Note
}

// Total is the number of mismatches found, listed or not.
func (r *Result) Total() int { return len(r.Mismatches) + r.Omitted }

// Checker re-measures processes' code. It is safe for concurrent use; it
// keeps parsed ELF metadata by file identity, so that repeated checks do
// not re-read relocation tables.
type Checker struct {
	mu      sync.Mutex
	objects map[cacheKey]*object

	vdsoOnce sync.Once
	vdso     []byte
	vdsoObj  *object
	vdsoErr  error
}

// NewChecker returns a Checker with an empty cache.
func NewChecker() *Checker { return &Checker{objects: map[cacheKey]*object{}} }

// fileID is a file's identity as maps prints it.
type fileID struct {
	major, minor uint32
	ino          uint64
}

func (id fileID) String() string {
	return fmt.Sprintf("dev %02x:%02x ino %d", id.major, id.minor, id.ino)
}

func idOf(st *unix.Stat_t) fileID {
	return fileID{unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino}
}

// cacheKey identifies a file's contents well enough to reuse its parse: a
// file rewritten in place changes its mtime or ctime.
type cacheKey struct {
	id           fileID
	size         int64
	mtime, ctime unix.Timespec
}

// openObject is a file being compared during one check.
type openObject struct {
	f       *os.File
	own     bool // close f at the end of the check
	name    string
	obj     *object
	covered []span
}

// Check compares the code t's process maps with the files on disk. The
// returned error is also in Result.Error; a Result without error and
// without mismatches means every executable file-backed mapping equals
// its file, and the expected binary's code is all mapped.
func (c *Checker) Check(t Target) (res Result, err error) {
	res.RuntimeCheck = attest.RuntimeCheck{Process: t.Process, VM: t.VM, PID: t.PID, Binary: t.Binary, Checked: time.Now().UTC()}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%s pid %d: %w", t.Process, t.PID, err)
			res.Error = err.Error()
		}
	}()
	if t.PID <= 0 {
		return res, fmt.Errorf("invalid pid")
	}
	proc := "/proc/" + strconv.Itoa(t.PID)
	start, err := procStart(proc)
	if err != nil {
		return res, err
	}
	if t.StartTime != 0 && start != t.StartTime {
		return res, fmt.Errorf("%w: start time %d, expected %d (PID reused)", ErrProcessGone, start, t.StartTime)
	}
	mem, err := os.OpenFile(proc+"/mem", os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return res, gone(err)
	}
	defer mem.Close()
	raw, err := readProc(proc+"/maps", MaxMapsBytes)
	if err != nil {
		return res, gone(err)
	}
	maps, err := ParseMaps(raw)
	if err != nil {
		return res, fmt.Errorf("%s/maps: %w", proc, err)
	}
	if len(maps) == 0 {
		return res, fmt.Errorf("%w: no mappings (exiting)", ErrProcessGone)
	}
	var exe unix.Stat_t
	if err := unix.Stat(proc+"/exe", &exe); err != nil {
		return res, gone(err)
	}
	s := &scan{c: c, res: &res, mem: mem, proc: proc, objs: map[fileID]*openObject{}}
	defer s.closeAll()
	bin, err := s.openBinary(t)
	if err != nil {
		return res, err
	}
	if idOf(&exe) != bin.id {
		s.identity(t.Binary, 0, KindWrongBinary, fmt.Sprintf("the process runs %s, not the expected file (%s)", idOf(&exe), bin.id))
	}
	for _, m := range maps {
		if !m.Exec() {
			continue
		}
		if err := s.mapping(m, bin); err != nil {
			return res, err
		}
	}
	s.coverage(bin, idOf(&exe) == bin.id)
	if again, err := procStart(proc); err != nil || again != start {
		return res, fmt.Errorf("%w: exited during the check", ErrProcessGone)
	}
	return res, nil
}

// gone turns "no such process" errors into ErrProcessGone.
func gone(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w: %v", ErrProcessGone, err)
	}
	return err
}

// procStart reads the start time (field 22) of /proc/PID/stat; a zombie
// counts as gone.
func procStart(proc string) (uint64, error) {
	b, err := readProc(proc+"/stat", 4096)
	if err != nil {
		return 0, gone(err)
	}
	// comm (field 2) may hold spaces and parentheses: fields resume after
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s/stat: malformed", proc)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("%s/stat: short", proc)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("%w: zombie", ErrProcessGone)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// readProc reads a kernel-generated file, refusing more than limit bytes.
func readProc(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: over %d bytes", path, ErrMapsTooLarge, limit)
	}
	return b, nil
}

// object returns the parsed metadata of f, from the cache when the file
// is unchanged.
func (c *Checker) object(f *os.File, st *unix.Stat_t) (*object, error) {
	key := cacheKey{idOf(st), st.Size, st.Mtim, st.Ctim}
	c.mu.Lock()
	o := c.objects[key]
	c.mu.Unlock()
	if o != nil {
		return o, nil
	}
	o, err := parseObject(f, st.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	c.mu.Lock()
	if len(c.objects) >= maxCached {
		clear(c.objects)
	}
	c.objects[key] = o
	c.mu.Unlock()
	return o, nil
}

// ownVDSO reads this process's vDSO once: every 64-bit process on the
// host maps the same kernel image, so a QEMU's [vdso] must equal it.
func (c *Checker) ownVDSO() ([]byte, *object, error) {
	c.vdsoOnce.Do(func() {
		raw, err := readProc("/proc/self/maps", MaxMapsBytes)
		if err != nil {
			c.vdsoErr = err
			return
		}
		maps, err := ParseMaps(raw)
		if err != nil {
			c.vdsoErr = err
			return
		}
		for _, m := range maps {
			if m.Name == "[vdso]" && m.Anonymous() && m.Size() <= 1<<20 {
				mem, err := os.OpenFile("/proc/self/mem", os.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					c.vdsoErr = err
					return
				}
				defer mem.Close()
				b := make([]byte, m.Size())
				if _, err := mem.ReadAt(b, int64(m.Start)); err != nil {
					c.vdsoErr = fmt.Errorf("own vdso: %w", err)
					return
				}
				c.vdso = b
				// The vdso is an ELF image linked at 0; without its
				// headers it is still compared, only not symbolized.
				if c.vdsoObj, err = parseObject(bytes.NewReader(b), int64(len(b))); err != nil {
					c.vdsoObj = &object{size: int64(len(b))}
				}
				return
			}
		}
		c.vdsoErr = errors.New("this process has no [vdso]")
	})
	return c.vdso, c.vdsoObj, c.vdsoErr
}

// scan is the state of one check.
type scan struct {
	c    *Checker
	res  *Result
	mem  *os.File
	proc string
	objs map[fileID]*openObject

	fileBuf, memBuf []byte
}

// binaryObject is the expected executable with its identity.
type binaryObject struct {
	*openObject
	id fileID
}

func (s *scan) openBinary(t Target) (binaryObject, error) {
	f, own := t.File, false
	if f == nil {
		var err error
		if f, err = os.OpenFile(t.Binary, os.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return binaryObject{}, fmt.Errorf("expected binary: %w", err)
		}
		own = true
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		if own {
			f.Close()
		}
		return binaryObject{}, fmt.Errorf("expected binary %s: not a readable regular file (%v)", t.Binary, err)
	}
	o, err := s.c.object(f, &st)
	if err != nil {
		if own {
			f.Close()
		}
		return binaryObject{}, fmt.Errorf("expected binary: %w", err)
	}
	oo := &openObject{f: f, own: own, name: t.Binary, obj: o}
	s.objs[idOf(&st)] = oo
	return binaryObject{oo, idOf(&st)}, nil
}

func (s *scan) closeAll() {
	for _, o := range s.objs {
		if o.own {
			o.f.Close()
		}
	}
}

// mapping checks one executable mapping.
func (s *scan) mapping(m Mapping, bin binaryObject) error {
	if m.Anonymous() {
		return s.anonymous(m)
	}
	id := fileID{m.DevMajor, m.DevMinor, m.Inode}
	if o := s.objs[id]; o != nil {
		return s.compare(o, m)
	}
	// The file's identity through map_files, for file systems (overlayfs
	// before Linux 6.8) where maps prints the underlying inode.
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("%s/map_files/%x-%x", s.proc, m.Start, m.End), &st) == nil && idOf(&st) == bin.id {
		return s.compare(bin.openObject, m)
	}
	if strings.HasPrefix(m.Name, "/memfd:") {
		s.note(NoteMemfd, m)
		return nil
	}
	o, why := s.openLibrary(m, id)
	if o == nil {
		s.identity(quoteName(m.Name), m.Offset, KindUnverifiable, why)
		return nil
	}
	s.objs[id] = o
	return s.compare(o, m)
}

// openLibrary opens the file a mapping names, in the daemon's mount
// namespace, and accepts it only if it is the very file mapped (same
// device and inode). The path is the process's choice: it is opened O_PATH
// first (no device open has side effects), with no magic links (/proc
// fd links), and reopened for reading only once it is known to be a
// regular file with the mapping's identity. Ordinary symlinks are followed:
// a jailed QEMU sees each library bind-mounted at the name its loader
// asked for (libfoo.so.1), which on the host is a symlink to the file
// (libfoo.so.1.2.3); whatever the path resolves to must still be the very
// inode mapped. It returns nil and the reason when the mapping cannot be
// verified.
func (s *scan) openLibrary(m Mapping, id fileID) (*openObject, string) {
	if strings.HasSuffix(m.Name, " (deleted)") {
		return nil, "the mapped file was deleted or replaced on disk since it was mapped"
	}
	if !strings.HasPrefix(m.Name, "/") {
		return nil, "no path names the mapped file"
	}
	pfd, err := unix.Openat2(unix.AT_FDCWD, m.Name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Sprintf("the named path does not open here: %v", err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, err.Error()
	}
	if idOf(&st) != id {
		return nil, fmt.Sprintf("the named path is %s, the mapping is %s", idOf(&st), id)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, "the mapped file is not a regular file"
	}
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(pfd), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err.Error()
	}
	o, err := s.c.object(f, &st)
	if err != nil {
		f.Close()
		return nil, err.Error()
	}
	return &openObject{f: f, own: true, name: m.Name, obj: o}, ""
}

// anonymous handles executable memory no file backs.
func (s *scan) anonymous(m Mapping) error {
	switch m.Name {
	case "[vsyscall]":
		// The legacy vsyscall page: kernel-emulated (no user-writable
		// page) at a fixed address.
		return nil
	case "[vdso]":
		own, obj, err := s.c.ownVDSO()
		if err != nil {
			return fmt.Errorf("vdso: %w", err)
		}
		if m.Size() != uint64(len(own)) {
			s.identity("[vdso]", 0, KindUnverifiable, fmt.Sprintf("%d bytes, this kernel's vdso has %d", m.Size(), len(own)))
			return nil
		}
		o := &openObject{f: nil, name: "[vdso]", obj: obj}
		return s.compareWith(o, bytes.NewReader(own), m)
	}
	s.note(NoteAnonymous, m)
	return nil
}

func (s *scan) note(kind string, m Mapping) {
	if len(s.res.Notes) < MaxNotes {
		s.res.Notes = append(s.res.Notes, Note{Kind: kind, Start: m.Start, End: m.End, Perms: m.Perms, Name: quoteName(m.Name)})
	}
}

// identity records a finding about which file is mapped.
func (s *scan) identity(object string, off uint64, kind, detail string) {
	if len(s.res.Mismatches) >= MaxReported {
		s.res.Omitted++
		return
	}
	s.res.Mismatches = append(s.res.Mismatches, attest.TextMismatch{Object: object, Offset: off, Symbol: kind + " " + detail})
}

func (s *scan) compare(o *openObject, m Mapping) error { return s.compareWith(o, o.f, m) }

// compareWith compares mapping m with file (o's contents) at the same file
// offsets, reading both in chunks. The whole mapping is compared, not only
// the executable segment inside it: every byte of an executable mapping
// can run. Bytes past the end of the file read as zero in the last page.
func (s *scan) compareWith(o *openObject, file io.ReaderAt, m Mapping) error {
	const page = 4096
	size := uint64(o.obj.size)
	limit := (size + page - 1) &^ (page - 1)
	if m.Offset >= limit {
		s.note(NotePastEOF, m)
		return nil
	}
	n := min(m.Size(), limit-m.Offset)
	if uint64(s.res.Bytes)+n > MaxCompared {
		return fmt.Errorf("%w: %d bytes compared, %s needs %d more (at most %d)", ErrBudget, s.res.Bytes, o.name, n, MaxCompared)
	}
	if !overlaps(o.obj.execSpans(), m.Offset, m.Offset+n) {
		s.note(NoteOutsideCode, m)
	}
	if s.fileBuf == nil {
		s.fileBuf, s.memBuf = make([]byte, chunk), make([]byte, chunk)
	}
	var d differ
	for off := m.Offset; off < m.Offset+n; {
		k := min(uint64(chunk), m.Offset+n-off)
		want, got := s.fileBuf[:k], s.memBuf[:k]
		clear(want)
		if off < size {
			if _, err := file.ReadAt(want[:min(k, size-off)], int64(off)); err != nil && err != io.EOF {
				return fmt.Errorf("%s: %w", o.name, err)
			}
		}
		if _, err := s.mem.ReadAt(got, int64(m.Start+(off-m.Offset))); err != nil {
			return gone(fmt.Errorf("memory of %s at %#x: %w", o.name, m.Start+(off-m.Offset), err))
		}
		d.feed(off, want, got, o.obj.masks)
		off += k
	}
	d.close()
	s.res.Bytes += int64(n)
	s.res.Masked += d.masked
	o.covered = append(o.covered, span{m.Offset, m.Offset + n})
	for _, r := range d.runs {
		if len(s.res.Mismatches) >= MaxReported {
			s.res.Omitted++
			continue
		}
		s.res.Mismatches = append(s.res.Mismatches, s.describe(o, file, m, r))
	}
	s.res.Omitted += d.total - len(d.runs)
	return nil
}

// describe builds the TextMismatch for one run.
func (s *scan) describe(o *openObject, file io.ReaderAt, m Mapping, r span) attest.TextMismatch {
	n := min(r.end-r.off, MaxHexBytes)
	want, got := make([]byte, n), make([]byte, n)
	file.ReadAt(want, int64(r.off)) // past EOF stays zero, as in memory
	s.mem.ReadAt(got, int64(m.Start+(r.off-m.Offset)))
	return attest.TextMismatch{
		Object: o.name, Offset: r.off, Length: int(r.end - r.off),
		Symbol: o.obj.symbolize(file, r.off), Expected: hex.EncodeToString(want), Found: hex.EncodeToString(got),
	}
}

// coverage reports code of a compared file that no executable mapping
// covers: the expected binary's text must all be mapped (code replaced by
// an anonymous mapping at the same address shows up here). When the
// process runs another binary, that was reported already.
func (s *scan) coverage(bin binaryObject, runsBinary bool) {
	for id, o := range s.objs {
		if o.obj == nil || (id == bin.id && !runsBinary) {
			continue
		}
		if id != bin.id && len(o.covered) == 0 {
			continue
		}
		cov := mergeSpans(o.covered)
		for _, t := range o.obj.execSpans() {
			t.off &^= 4095
			if off, ok := firstUncovered(cov, t); ok {
				s.identity(o.name, off, KindTextMissing, fmt.Sprintf("code at file offset %#x is not mapped executable", off))
				break
			}
		}
	}
	s.res.Objects = 0
	for _, o := range s.objs {
		if len(o.covered) > 0 {
			s.res.Objects++
		}
	}
}

// firstUncovered returns the first offset of t outside the sorted,
// disjoint spans cov.
func firstUncovered(cov []span, t span) (uint64, bool) {
	p := t.off
	for _, c := range cov {
		if c.end <= p {
			continue
		}
		if c.off > p {
			return p, true
		}
		p = c.end
		if p >= t.end {
			return 0, false
		}
	}
	return p, p < t.end
}

func overlaps(spans []span, off, end uint64) bool {
	for _, s := range spans {
		if s.off < end && off < s.end {
			return true
		}
	}
	return false
}

// quoteName makes a name from maps safe to log and report: quoted Go
// syntax (no control characters, valid UTF-8), bounded.
func quoteName(s string) string {
	if len(s) > maxName {
		s = s[:maxName] + "..."
	}
	q := strconv.Quote(s)
	if q == `"`+s+`"` {
		return s
	}
	return q
}
