package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// evict drops a file's clean pages from the host page cache
// (POSIX_FADV_DONTNEED), so the next read of it comes from the disk. It
// is "echo 3 > drop_caches" for one file: the rest of a shared host's
// cache is left alone. Dirty pages are not dropped; every file this is
// called on was written with fsync (or by a QEMU that has exited).
func evict(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", path, err)
	}
	return nil
}

// sameFS reports whether two paths are on the same mounted file system,
// and its type as statfs names it.
func sameFS(a, b string) (bool, string, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, "", err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, "", err
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(a, &fs); err != nil {
		return false, "", err
	}
	return sa.Dev == sb.Dev, fsName(fs.Type), nil
}

func fsName(magic int64) string {
	switch magic {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("0x%x", magic)
}
