package mirror

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/safefs"
)

// The classic libpcap format, written little-endian: a 24-byte file
// header (magic 0xa1b2c3d4 for microsecond timestamps, version 2.4, zone
// and accuracy 0, the snap length, link type 1 Ethernet), then per frame a
// 16-byte record header (seconds, microseconds, bytes stored, original
// length) and the bytes stored.
const (
	pcapMagic        = 0xa1b2c3d4
	pcapFileHeader   = 24
	pcapRecordHeader = 16
	linkTypeEthernet = 1
)

// appendPcapHeader appends a file header for snap-length snap.
func appendPcapHeader(b []byte, snap int) []byte {
	b = binary.LittleEndian.AppendUint32(b, pcapMagic)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = binary.LittleEndian.AppendUint32(b, 0) // thiszone
	b = binary.LittleEndian.AppendUint32(b, 0) // sigfigs
	b = binary.LittleEndian.AppendUint32(b, uint32(snap))
	return binary.LittleEndian.AppendUint32(b, linkTypeEthernet)
}

// appendPcapRecord appends r's record header.
func appendPcapRecord(b []byte, r *record) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(r.ts/1e9))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.ts%1e9/1e3))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.n))
	return binary.LittleEndian.AppendUint32(b, uint32(r.orig))
}

// maxCreateTries bounds the names tried when a file name is taken.
const maxCreateTries = 16

// pcapTarget writes a session's copies to NAME-000001.pcap, ... in the
// manager's directory: a new file once the current one would pass
// maxBytes, the oldest removed beyond maxFiles. Numbering continues after
// the highest file of the session already there (from an earlier run),
// and those files count towards maxFiles.
type pcapTarget struct {
	dir      *safefs.Dir
	name     string // the session's
	snap     int
	maxBytes int64
	maxFiles int

	next   int           // number of the next file
	f      *os.File      // current file; nil after a failure
	w      *bufio.Writer // over f
	size   int64         // bytes in the current file, buffered included
	hdr    []byte        // scratch for headers
	broken bool          // a write failed: start a new file at the next tick

	mu   sync.Mutex // guards list
	list []string   // file names, oldest first
}

func newPcapTarget(dir *safefs.Dir, s *Session) (*pcapTarget, error) {
	t := &pcapTarget{dir: dir, name: s.Name, snap: s.SnapLen, maxBytes: s.Target.MaxBytes, maxFiles: s.Target.MaxFiles, next: 1}
	old, err := sessionFiles(dir.Path(), s.Name)
	if err != nil {
		return nil, err
	}
	for _, f := range old {
		t.list = append(t.list, f.name)
		t.next = max(t.next, f.num+1)
	}
	if err := t.rotate(); err != nil {
		return nil, err
	}
	return t, nil
}

type pcapFile struct {
	name string
	num  int
}

// sessionFiles lists the session's files in dir, by number. The directory
// is the daemon's own (root-only), so listing it by path is sound; files
// are opened and removed through the Dir only.
func sessionFiles(dir, session string) ([]pcapFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mirror: list %s: %w", dir, err)
	}
	var out []pcapFile
	for _, e := range ents {
		num, ok := fileNumber(e.Name(), session)
		if ok && e.Type().IsRegular() {
			out = append(out, pcapFile{e.Name(), num})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].num < out[j].num })
	return out, nil
}

// fileNumber parses "SESSION-NNNNNN.pcap" (six digits or more).
func fileNumber(file, session string) (int, bool) {
	rest, ok := strings.CutPrefix(file, session+"-")
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, ".pcap")
	if !ok || len(digits) < 6 || len(digits) > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 || strconv.Itoa(n) != strings.TrimLeft(digits, "0") {
		return 0, false
	}
	return n, true
}

func (t *pcapTarget) write(r *record) error {
	if t.f == nil {
		return fmt.Errorf("no pcap file open (%s)", t.name)
	}
	need := int64(pcapRecordHeader + r.n)
	if t.size+need > t.maxBytes && t.size > pcapFileHeader {
		if err := t.rotate(); err != nil {
			return err
		}
	}
	t.hdr = appendPcapRecord(t.hdr[:0], r)
	if _, err := t.w.Write(t.hdr); err != nil {
		return t.failed(err)
	}
	if _, err := t.w.Write(r.frame()); err != nil {
		return t.failed(err)
	}
	t.size += need
	return nil
}

func (t *pcapTarget) failed(err error) error {
	t.broken = true
	return fmt.Errorf("pcap %s: %w", t.f.Name(), err)
}

// rotate closes the current file (flushed and synced) and starts the
// next, then removes the oldest files beyond maxFiles.
func (t *pcapTarget) rotate() error {
	if err := t.closeFile(); err != nil {
		return err
	}
	var f *os.File
	var name string
	var err error
	for range maxCreateTries {
		name = fmt.Sprintf("%s-%06d.pcap", t.name, t.next)
		t.next++
		// O_EXCL: never write into a file that is already there (a stale
		// one, or anything planted); safefs resolves beneath the
		// directory and follows no symlink.
		f, err = t.dir.Open(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("mirror: create %s/%s: %w", t.dir.Path(), name, err)
	}
	t.f, t.w, t.size, t.broken = f, bufio.NewWriterSize(f, 64<<10), pcapFileHeader, false
	t.hdr = appendPcapHeader(t.hdr[:0], t.snap)
	if _, err := t.w.Write(t.hdr); err != nil {
		return t.failed(err)
	}
	t.mu.Lock()
	t.list = append(t.list, name)
	var gone []string
	for len(t.list) > t.maxFiles {
		gone = append(gone, t.list[0])
		t.list = t.list[1:]
	}
	t.mu.Unlock()
	for _, g := range gone {
		if err := t.dir.Remove(g); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mirror: remove old capture: %w", err)
		}
	}
	return nil
}

// closeFile flushes, syncs and closes the current file, if any.
func (t *pcapTarget) closeFile() error {
	if t.f == nil {
		return nil
	}
	f := t.f
	t.f = nil
	err := t.w.Flush()
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pcap %s: %w", f.Name(), err)
	}
	return nil
}

func (t *pcapTarget) tick() error {
	if t.f == nil || t.broken {
		return t.rotate()
	}
	if err := t.w.Flush(); err != nil {
		return t.failed(err)
	}
	return nil
}

func (t *pcapTarget) close() error { return t.closeFile() }

func (t *pcapTarget) files() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, len(t.list))
	for i, n := range t.list {
		out[i] = filepath.Join(t.dir.Path(), n)
	}
	return out
}
