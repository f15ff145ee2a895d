// Package textcheck re-measures the code of a running process against the
// ELF files on disk: the daemon's own, and each VM's QEMU, which a guest
// escape would take over first.
//
// # What is compared
//
// Every executable mapping in /proc/PID/maps is classified by the identity
// of the file behind it (device and inode, which the kernel prints and the
// process cannot forge), never by the path string, which the process chose:
//
//   - the expected binary (the file the daemon launched, opened by the
//     daemon): its mappings are compared with it;
//   - a library: the path the line names is opened in the daemon's mount
//     namespace (no magic links; ordinary symlinks followed, since the jail
//     mounts each library at its soname, a symlink on the host), and
//     accepted only if it is the very inode mapped; otherwise the mapping is an
//     [unverifiable-mapping] finding (deleted or replaced since mapped, a
//     file only the process can see, a path naming another file);
//   - [vdso]: compared with the checker's own vdso (one kernel image for
//     every 64-bit process); [vsyscall] is kernel-emulated and skipped;
//   - anonymous executable memory and memfd mappings: notes, not
//     mismatches. TCG (QEMU without KVM) allocates its translated-code
//     buffer as one anonymous rwx mapping (tb-size, 1 GiB by default for
//     system emulation; as a memfd mapped twice with split-wx, which
//     Bulwark does not enable). Its contents change by design and cannot
//     be compared with anything; injected code looks the same, so these
//     notes are logged for the operator, not decided.
//
// A compared mapping is compared whole (every byte of an executable
// mapping can run, not only the PT_LOAD segment's), at the same file
// offsets, up to the end of the file's last page (past EOF memory is
// zero). Bytes a dynamic relocation writes inside an executable PT_LOAD
// (DT_TEXTREL objects only; PIE code has none) are masked by the
// relocation's size and counted in Result.Masked. The expected binary's
// executable segments must be mapped in full ([text-not-mapped]
// otherwise), and /proc/PID/exe must be the expected file
// ([wrong-binary]).
//
// # Output
//
// Runs of differing bytes (two runs closer than 8 equal bytes are one)
// become attest.TextMismatch: file offset, length, at most 32 bytes of
// each side in hex, and the enclosing function ("name+0xOFF") from
// .symtab, a Go binary's .gopclntab, or .dynsym. Identity findings are
// TextMismatch entries of Length 0 whose Symbol starts with the kind in
// brackets. At most 16 are listed; Result.Omitted counts the rest.
//
// # Limits
//
// maps is read up to 4 MiB and 65536 lines and parsed strictly; at most
// 256 MiB of code is compared per process (QEMU with its libraries is
// about 25 MiB); anything over a limit is an error, never a clean result.
// The PID's start time is checked before and after, so a PID reused
// mid-check is ErrProcessGone, not a check of another process.
package textcheck
