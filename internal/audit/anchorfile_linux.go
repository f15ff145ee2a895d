package audit

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fsAppendFL is FS_APPEND_FL from linux/fs.h: the inode may only be
// opened for appending and may not be renamed, unlinked or truncated.
const fsAppendFL = 0x00000020

// setAppendOnlyFlag sets FS_APPEND_FL on f (chattr +a). The kernel reads
// and writes the flags as an int whatever the ioctl number's size says,
// which is what the x/sys wrappers pass. Setting it needs
// CAP_LINUX_IMMUTABLE and a file system that has the flag (ext4, xfs,
// btrfs; not tmpfs).
func setAppendOnlyFlag(f *os.File) error {
	return fsFlags(f, func(flags uint32) uint32 { return flags | fsAppendFL })
}

// clearAppendOnlyFlag undoes setAppendOnlyFlag; tests use it so that their
// temporary directories can be removed.
func clearAppendOnlyFlag(f *os.File) error {
	return fsFlags(f, func(flags uint32) uint32 { return flags &^ fsAppendFL })
}

func fsFlags(f *os.File, change func(uint32) uint32) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		flags, err := unix.IoctlGetUint32(int(fd), unix.FS_IOC_GETFLAGS)
		if err != nil {
			ioErr = fmt.Errorf("FS_IOC_GETFLAGS: %w", err)
			return
		}
		if want := change(flags); want != flags {
			if err := unix.IoctlSetPointerInt(int(fd), unix.FS_IOC_SETFLAGS, int(want)); err != nil {
				ioErr = fmt.Errorf("FS_IOC_SETFLAGS: %w", err)
			}
		}
	})
	if err != nil {
		return err
	}
	return ioErr
}
