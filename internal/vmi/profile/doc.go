// Package profile derives everything the introspection monitor needs to read
// a Linux guest's memory from the guest's own kernel image: release string,
// build id, link-time addresses of key symbols, the full kallsyms table, and
// byte offsets of the structure members it walks (task_struct, cred, module,
// kobject, ...), taken from the kernel's BTF.
//
// Nothing comes from a System.map or debug package: Debian ships neither with
// the kernel, and a profile that depends only on the bzImage can be rebuilt
// for any guest kernel the host is given. Profiles are cached by GNU build id,
// which identifies the link that produced the kernel, so two images holding
// the same vmlinux (signed and unsigned, say) share one profile.
package profile
