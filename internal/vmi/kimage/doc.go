// Package kimage turns a Linux x86-64 boot image (bzImage) into the
// uncompressed vmlinux ELF it carries, and reads the facts an introspection
// profile needs from that ELF: the GNU build id and the BTF type information.
//
// Everything here treats the image as hostile input: it may come from a guest
// disk or an untrusted upload. Every size and offset taken from the file is
// checked against the file and against fixed limits before it is used, and the
// decompressed output is capped at MaxImageSize so that a decompression bomb
// fails with an error instead of exhausting the host's memory.
package kimage
