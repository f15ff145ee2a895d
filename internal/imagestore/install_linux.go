package imagestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Directory and file modes of the store. Image directories are root's
// alone: a VM's hypervisor never opens them (it gets descriptors), and
// nobody else may swap a file between a digest check and its use.
const (
	DirMode  = 0o700
	FileMode = 0o644 // kernel, initrd, manifest: public bits (the packages' own)
	DiskMode = 0o600 // disk templates: a whole root file system

	stagingMode = 0o711
)

// Staging is a directory where one build of an image is assembled before
// Install publishes it. It holds the image's lock until Install or Abort.
type Staging struct {
	Dir  string
	name string
	s    Store
	lock *os.File
}

// Begin takes the image's lock (waiting for another build of the same name
// to finish) and creates a fresh staging directory next to the images.
func (s Store) Begin(name string) (*Staging, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Dir, DirMode); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(s.Dir, "."+name+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image %s: lock: %w", name, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("image %s: lock: %w", name, err)
	}
	dir, err := os.MkdirTemp(s.Dir, ".build-"+name+"-")
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	// Traversable (not listable) while building, so that tools dropping
	// privileges inside it (apt downloads as _apt) can reach their files;
	// Install makes it DirMode before publishing.
	if err := os.Chmod(dir, stagingMode); err != nil {
		os.RemoveAll(dir)
		lock.Close()
		return nil, err
	}
	return &Staging{Dir: dir, name: name, s: s, lock: lock}, nil
}

// Abort removes the staging directory and releases the lock.
func (st *Staging) Abort() {
	if st.Dir != "" {
		os.RemoveAll(st.Dir)
		st.Dir = ""
	}
	if st.lock != nil {
		st.lock.Close()
		st.lock = nil
	}
}

// Install writes the manifest into the staging directory and publishes it
// as the image, replacing an existing image of the name in one atomic
// rename (RENAME_EXCHANGE), so a reader sees the old image or the new one,
// never a mixture. The files named by m must already be in the staging
// directory. The lock is released.
func (st *Staging) Install(m *Manifest) error {
	defer st.Abort()
	m.Schema = SchemaVersion
	m.Name = st.name
	if err := m.Validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(st.Dir, ManifestName), append(data, '\n'), FileMode); err != nil {
		return fmt.Errorf("image %s: %w", st.name, err)
	}
	if err := os.Chmod(st.Dir, DirMode); err != nil {
		return fmt.Errorf("image %s: %w", st.name, err)
	}
	final := filepath.Join(st.s.Dir, st.name)
	err = unix.Renameat2(unix.AT_FDCWD, st.Dir, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		err = os.Rename(st.Dir, final)
		if err == nil {
			st.Dir = ""
		}
	}
	// After an exchange st.Dir holds the previous image; Abort removes it.
	if err != nil {
		return fmt.Errorf("image %s: publishing: %w", st.name, err)
	}
	if d, err := os.Open(st.s.Dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func writeFileSync(p string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
