// Package safefs acts on names inside directories that an unprivileged uid
// can write, without letting that uid redirect the daemon's I/O.
//
// The daemon runs as root; each VM's hypervisor runs as its own uid, which
// can write the VM's run directory. Whatever root does there by path (open,
// truncate, chown, remove, connect, bind) can be redirected by a symlink, a
// hard link or a FIFO that the uid planted at the name or at a directory on
// the way. Root therefore touches names in such directories only through
// this package.
//
// A Dir holds a descriptor for a directory that the daemon opened once by a
// path it trusts (every directory on that path root-owned and not writable by
// others). Every name below it is resolved relative to that descriptor with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS), or, on
// kernels without openat2 (before 5.6), by walking one component at a time
// with O_NOFOLLOW. Names are relative and "/"-separated, with no ".", ".." or
// empty components (ErrInvalidName); a symlink met at any component is
// refused (ErrSymlink), never followed. The final component is acted on with
// calls that do not follow it either: unlinkat, mkdirat, renameat, fchownat
// on an O_PATH descriptor, bind relative to the directory, connect through
// the O_PATH descriptor of the socket inode.
//
// On top of that:
//   - opens are non-blocking and refuse anything but regular files and
//     directories (ErrNotRegular), so a FIFO, device or file lease cannot
//     stall the daemon;
//   - opens, Chown and Chmod refuse a regular file with more than one hard
//     link (ErrHardlink): where fs.protected_hardlinks is off the uid could
//     have linked a host file into its directory; O_TRUNC is applied only
//     after the checks;
//   - reads are capped (ReadFileCapped refuses with ErrTooLarge, ReadTail and
//     ReadFileTail keep the last bytes, for logs);
//   - RemoveAll stays below the directory, follows no symlink, does not cross
//     mount points and stops at fixed depth and entry limits (ErrTooLarge);
//   - sockets are bound with their final permissions from the start.
//
// os.Root is not enough: it follows symlinks that stay inside the root, opens
// FIFOs blocking, and has no socket operations.
package safefs
