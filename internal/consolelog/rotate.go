// Package consolelog keeps a VM's serial console output in a bounded set of
// rotating files. The bytes come from the guest, so the only promise made
// about them is the bound: at most MaxSize*(Keep+1) bytes on disk per VM.
package consolelog

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// Defaults: 1 MiB per file, the live file plus 3 older ones.
const (
	DefaultMaxSize = 1 << 20
	DefaultKeep    = 3
)

// Log is an io.Writer that appends to Path and rotates it to Path.1 ...
// Path.Keep when it reaches MaxSize. Safe for concurrent use.
type Log struct {
	Path    string
	MaxSize int64
	Keep    int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (appending to) the log at path.
func Open(path string, maxSize int64, keep int) (*Log, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if keep < 0 {
		keep = DefaultKeep
	}
	l := &Log{Path: path, MaxSize: maxSize, Keep: keep}
	if err := l.openLocked(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) openLocked() error {
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("console log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, rotating as often as needed so no file passes MaxSize.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	written := 0
	for len(p) > 0 {
		if l.size >= l.MaxSize {
			if err := l.rotateLocked(); err != nil {
				return written, err
			}
		}
		n := int64(len(p))
		if room := l.MaxSize - l.size; n > room {
			n = room
		}
		m, err := l.f.Write(p[:n])
		written += m
		l.size += int64(m)
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (l *Log) rotateLocked() error {
	l.f.Close()
	l.f = nil
	if l.Keep == 0 {
		os.Remove(l.Path)
	} else {
		os.Remove(fmt.Sprintf("%s.%d", l.Path, l.Keep))
		for i := l.Keep - 1; i >= 1; i-- {
			os.Rename(fmt.Sprintf("%s.%d", l.Path, i), fmt.Sprintf("%s.%d", l.Path, i+1))
		}
		if err := os.Rename(l.Path, l.Path+".1"); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return l.openLocked()
}

// Close closes the live file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Tail returns up to n of the most recent bytes across the live file and the
// rotated ones, oldest first.
func Tail(path string, keep int, n int64) ([]byte, error) {
	var chunks [][]byte
	remaining := n
	for i := 0; i <= keep && remaining > 0; i++ {
		p := path
		if i > 0 {
			p = fmt.Sprintf("%s.%d", path, i)
		}
		b, err := tailFile(p, remaining)
		if os.IsNotExist(err) {
			if i == 0 {
				continue
			}
			break
		}
		if err != nil {
			return nil, err
		}
		chunks = append(chunks, b)
		remaining -= int64(len(b))
	}
	out := make([]byte, 0, n-remaining)
	for i := len(chunks) - 1; i >= 0; i-- {
		out = append(out, chunks[i]...)
	}
	return out, nil
}

func tailFile(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := fi.Size() - n
	if off < 0 {
		off = 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, n))
}
