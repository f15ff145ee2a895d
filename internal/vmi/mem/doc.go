// Package mem is a read-only view of a guest's physical memory, the
// foundation of introspection: every later reader (page walks, VMCOREINFO,
// kernel structures) goes through Physical.
//
// Every byte read here is controlled by the guest, which introspection
// treats as the attacker, and it changes while it is read (the guest keeps
// running). So reads never return partial data, never reach outside guest
// RAM, and turn faults of the mapping (a RAM file that shrank) into errors
// instead of crashing the monitor. Torn or inconsistent data is expected and
// left to the callers' own checks.
package mem
