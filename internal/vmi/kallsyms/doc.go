// Package kallsyms recovers the kernel's own symbol table from a Linux image
// without a System.map or debug information.
//
// The kernel keeps a compressed copy of its symbols in .rodata for
// /proc/kallsyms and stack traces. scripts/kallsyms.c emits it as a set of
// arrays, each starting on an 8-byte boundary (the ALGN macro on 64-bit):
//
//	kallsyms_offsets        s32[num_syms]  (or kallsyms_addresses u64[] without BASE_RELATIVE)
//	kallsyms_relative_base  u64
//	kallsyms_num_syms       u32, padded to 8
//	kallsyms_names          per symbol: length, then that many token indexes
//	kallsyms_markers        u32 (u64 on old kernels): names offset of every 256th symbol
//	kallsyms_seqs_of_names  u8[3][num_syms], big-endian (6.2+, and Debian's 6.1)
//	kallsyms_token_table    256 NUL-terminated tokens
//	kallsyms_token_index    u16[256]: offset of each token in the table
//
// Linux 6.4 reordered them to num_syms, names, markers, token_table,
// token_index, offsets, relative_base, seqs_of_names; both orders are
// recognised. The decoded name's first character is the nm-style type letter.
//
// Parsing starts from the one landmark that does not depend on the build:
// symbol names use the digits, so tokens 0x30-0x39 are the strings "0".."9".
// From the token table the other arrays are found by their sizes and
// alignment, and each step is cross-checked (token index against token table,
// markers against the decoded names, sorted addresses) so that a look-alike
// byte pattern is rejected rather than decoded into garbage. All counts read
// from the image are bounded before use: the image is untrusted input.
package kallsyms
