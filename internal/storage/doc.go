// Package storage keeps Bulwark's storage pools and volumes: directories
// of disk images (raw and qcow2) owned by root, created, resized, cloned
// and inspected with qemu-img, imported only against a SHA-256 digest, and
// opened for a VM as descriptors, its whole backing chain included.
//
// qcow2 headers are hostile input. An image's header can name a backing
// file or an external data file, which QEMU and qemu-img would open by
// path: the classic way to make a hypervisor read /etc/shadow. So:
//
//   - imports are parsed by our own header parser (ParseQcow2Header, pure
//     and fuzzed) before qemu-img sees them, and refused when they name a
//     backing or data file or carry features we do not know;
//   - a volume's backing chain is Bulwark's record (Volume.Base), never
//     the header; the header is re-read at every open and must agree;
//   - QEMU gets every layer as an explicit -blockdev node over a
//     descriptor, with backing=null at the bottom, so it never resolves a
//     name from a header; qemu-img is given json: filenames with
//     "backing": null for the same reason.
//
// Metadata lives in the store (kind "volume", name "POOL/NAME"); files are
// NAME.FORMAT in the pool directory (root 0700), each 0600. New files are
// made under a temporary name and renamed into place only when complete,
// so a failure (bad digest, full disk, vanished directory) leaves nothing.
package storage
