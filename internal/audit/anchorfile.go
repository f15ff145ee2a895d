package audit

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// AnchorFile is a Sink that appends every anchor, record heads and
// checkpoints, to a local file of JSON lines (see [Anchor]). It writes a
// head line per record without fsync and fsyncs at each checkpoint and at
// least every syncEvery lines, so that an append costs one write(2) and a
// power loss leaves at most syncEvery records unanchored.
//
// The file should live outside the database's directory. With appendOnly
// the file gets the append-only attribute (chattr +a, FS_APPEND_FL), which
// stops even its owner from rewriting or truncating it; only a process with
// CAP_LINUX_IMMUTABLE can clear it, so this raises the bar without stopping
// root. Remote sinks are the protection against root.
type AnchorFile struct {
	path      string
	f         *os.File
	buf       []byte
	syncEvery int
	unsynced  int
	// appendOnly says whether FS_APPEND_FL is set; appendOnlyErr why not.
	appendOnly    bool
	appendOnlyErr error
}

// defaultAnchorSync is the sync interval until the Log sets its own
// checkpoint interval.
const defaultAnchorSync = DefaultCheckpointEvery

// OpenAnchorFile opens path for appending anchors, creating it (mode 0600,
// its directory 0700) if needed. It refuses a symlink or anything but a
// regular file. When the file ends in a line a crash cut short, it ends
// that line and marks it torn, so the next anchor starts a line of its own.
// With setAppendOnly it sets the append-only attribute where the file
// system and the process's capabilities allow; AppendOnly says whether it
// did.
func OpenAnchorFile(path string, setAppendOnly bool) (*AnchorFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: anchor dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open anchor file: %w", err)
	}
	af := &AnchorFile{path: path, f: f, syncEvery: defaultAnchorSync, buf: make([]byte, 0, 512)}
	if err := af.check(); err != nil {
		f.Close()
		return nil, err
	}
	if setAppendOnly {
		af.appendOnlyErr = setAppendOnlyFlag(f)
		af.appendOnly = af.appendOnlyErr == nil
	} else {
		af.appendOnlyErr = fmt.Errorf("not requested")
	}
	return af, nil
}

// check refuses what is not a regular file, tightens a loose mode and ends
// a torn last line.
func (af *AnchorFile) check() error {
	fi, err := af.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: anchor file %s: %w", af.path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("audit: anchor file %s is not a regular file (%v)", af.path, fi.Mode())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := af.f.Chmod(0o600); err != nil {
			return fmt.Errorf("audit: anchor file %s has mode %#o: %w", af.path, fi.Mode().Perm(), err)
		}
	}
	if fi.Size() == 0 {
		return nil
	}
	r, err := os.OpenFile(af.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("audit: anchor file %s: %w", af.path, err)
	}
	defer r.Close()
	var last [1]byte
	if _, err := r.ReadAt(last[:], fi.Size()-1); err != nil {
		return fmt.Errorf("audit: anchor file %s: read last byte: %w", af.path, err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := af.f.WriteString("\n{\"t\":\"torn\"}\n"); err != nil {
		return fmt.Errorf("audit: anchor file %s: end torn line: %w", af.path, err)
	}
	return af.f.Sync()
}

// Path is the file's name.
func (af *AnchorFile) Path() string { return af.path }

// AppendOnly reports whether the file has the append-only attribute, and
// if not, why (unsupported file system, no CAP_LINUX_IMMUTABLE, or not
// requested).
func (af *AnchorFile) AppendOnly() (bool, error) { return af.appendOnly, af.appendOnlyErr }

// Anchor appends a's line. It fsyncs for a checkpoint and after syncEvery
// unsynced lines.
func (af *AnchorFile) Anchor(_ context.Context, a Anchor) error {
	af.buf = a.AppendLine(af.buf[:0])
	if _, err := af.f.Write(af.buf); err != nil {
		return fmt.Errorf("audit: anchor file %s: seq %d: %w", af.path, a.Seq, err)
	}
	af.unsynced++
	if a.Type == AnchorCheckpoint || af.unsynced >= af.syncEvery {
		return af.Sync()
	}
	return nil
}

// Sync makes the lines written so far durable.
func (af *AnchorFile) Sync() error {
	if err := af.f.Sync(); err != nil {
		return fmt.Errorf("audit: anchor file %s: sync: %w", af.path, err)
	}
	af.unsynced = 0
	return nil
}

// Close syncs and closes the file.
func (af *AnchorFile) Close() error {
	err := af.Sync()
	if cerr := af.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("audit: anchor file %s: %w", af.path, cerr)
	}
	return err
}

// ReadAnchorFile reads the anchors in path (see ReadAnchors), which must be
// a regular file and not a symlink.
func ReadAnchorFile(path string) (AnchorSet, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return AnchorSet{Name: path}, fmt.Errorf("audit: anchor file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return AnchorSet{Name: path}, fmt.Errorf("audit: anchor file %s is not a regular file", path)
	}
	return ReadAnchors(io.Reader(f), path)
}
