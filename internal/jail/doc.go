// Package jail starts a process (a VMM, or the introspection monitor)
// confined the way Firecracker's jailer confines its VMM: new mount, PID,
// IPC, UTS, network and cgroup namespaces; pivot_root into a read-only
// tmpfs root that holds only the program, its shared libraries and the few
// files and device nodes named in the Spec (each a read-only bind mount);
// /proc with hidepid=invisible,subset=pid; rlimits; an empty capability
// bounding set; an unprivileged uid and gid without supplementary groups;
// no_new_privs; every descriptor but the payload closed on exec; and one of
// Bulwark's seccomp allow lists (internal/jail/seccomp) installed just
// before execve.
//
// The work is split across two processes. The daemon side (Start) clones
// `bulwark jail-exec` into the new namespaces and hands it the Spec over a
// socketpair only after the caller has placed it in its cgroup, so nothing
// the jailed program does escapes the cgroup. The jail side (Main), running
// as PID 1 of the new PID namespace, builds the root, drops privileges and
// execs the program, which stays PID 1: when it dies the kernel kills
// everything left in its PID namespace. Set-up errors travel back over the
// socketpair; a clean execve closes it (close-on-exec), which Start reads
// as success.
package jail
