package qemu

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
)

// BIOSName is the one file QEMU loads besides its binary for Machine: the
// microvm BIOS (qboot on Debian, where it is a link to qboot.rom), looked
// up in QEMU's data directory. Nothing else is: x-option-roms=off keeps
// the option ROMs QEMU would add (linuxboot_dma.bin for -kernel,
// kvmvapic.bin) out of guest memory, -nodefaults adds no device, and
// virtio-mmio devices carry no ROM. Checked with strace on a real start
// of the command line Args.Build writes (QEMU 7.2): the only file opened
// under the data directory is bios-microvm.bin, twice (size, then
// contents); see TestFirmwareIsAllQEMUOpens.
const BIOSName = "bios-microvm.bin"

// maxFirmware bounds a firmware file (qboot is 64 KiB, SeaBIOS 256 KiB).
const maxFirmware = 16 << 20

// Firmware is a firmware file for QEMU, opened once per daemon process and
// passed to every QEMU by descriptor (-bios /proc/self/fd/N): what the
// daemon measured at start (PCR 11) is the open file every VM boots, even
// after a package upgrade replaces the file on disk. A change in place
// (a write to that very inode) is caught at each launch by Check.
type Firmware struct {
	// Name is the name QEMU looks the file up by (BIOSName).
	Name string
	// File is opened read-only by its resolved real path (File.Name(),
	// no symbolic link in it). Owned by this package: never close it.
	File *os.File

	digest [32]byte // SHA-256 when opened
}

// pinned holds the opened firmware by the real path of the QEMU binary:
// the daemon's measurement at start and every later launch get the same
// files. One entry per binary, for the life of the process.
var pinned struct {
	mu sync.Mutex
	m  map[string][]*Firmware
}

// DataDir returns QEMU's data directory for binary (a path, or a name
// looked up on PATH) the way QEMU finds it: relative to the real path of
// its executable, BIN/../share/qemu, every link resolved.
func DataDir(binary string) (string, error) {
	bin, err := exec.LookPath(binary)
	if err != nil {
		return "", fmt.Errorf("qemu binary: %w", err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return "", err
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		return "", fmt.Errorf("qemu binary: %w", err)
	}
	return filepath.Join(filepath.Dir(filepath.Dir(bin)), "share", "qemu"), nil
}

// PinnedFirmware returns the firmware QEMU at binary loads for Machine
// (only the BIOS), opening it on the first call for that binary and
// returning the same open files afterwards.
func PinnedFirmware(binary string) ([]*Firmware, error) {
	dir, err := DataDir(binary)
	if err != nil {
		return nil, err
	}
	pinned.mu.Lock()
	defer pinned.mu.Unlock()
	if fw, ok := pinned.m[dir]; ok {
		return fw, nil
	}
	fw, err := openFirmware(filepath.Join(dir, BIOSName))
	if err != nil {
		return nil, err
	}
	if pinned.m == nil {
		pinned.m = map[string][]*Firmware{}
	}
	pinned.m[dir] = []*Firmware{fw}
	return pinned.m[dir], nil
}

// openFirmware opens path (links resolved: Debian links bios files into
// ../seabios) read-only and records its digest.
func openFirmware(path string) (*Firmware, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("qemu firmware: %w", err)
	}
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("qemu firmware: %w", err)
	}
	fw := &Firmware{Name: filepath.Base(path), File: f}
	if fw.digest, err = hashFirmware(f); err != nil {
		f.Close()
		return nil, err
	}
	return fw, nil
}

// Check re-reads the open file and fails if its contents are no longer
// those seen when it was opened (and measured): someone wrote to the
// inode in place. A 64 KiB hash costs microseconds, once per launch.
func (fw *Firmware) Check() error {
	d, err := hashFirmware(fw.File)
	if err != nil {
		return err
	}
	if !bytes.Equal(d[:], fw.digest[:]) {
		return fmt.Errorf("qemu firmware %s changed in place since the daemon opened and measured it (SHA-256 %x, was %x); restart the daemon to measure the new file", fw.File.Name(), d, fw.digest)
	}
	return nil
}

// hashFirmware hashes f with pread (its offset is not used), refusing
// anything but a regular file of at most maxFirmware bytes.
func hashFirmware(f *os.File) ([32]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return [32]byte{}, fmt.Errorf("qemu firmware: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() == 0 || fi.Size() > maxFirmware {
		return [32]byte{}, fmt.Errorf("qemu firmware %s: not a regular file of 1 to %d bytes (mode %v, %d bytes)", f.Name(), maxFirmware, fi.Mode(), fi.Size())
	}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, maxFirmware+1))
	if err != nil {
		return [32]byte{}, fmt.Errorf("qemu firmware %s: %w", f.Name(), err)
	}
	if n != fi.Size() {
		return [32]byte{}, fmt.Errorf("qemu firmware %s changed size while read (%d, then %d bytes)", f.Name(), fi.Size(), n)
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d, nil
}
