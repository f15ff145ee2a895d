/*
 * hostile.c - a hostile stand-in for the VMM, used by Bulwark's integration
 * tests to check the jail every VMM (and the introspection monitor) runs in.
 *
 * Build (static, so the jail needs no shared libraries for it):
 *     gcc -static -O2 -Wall -Werror -o hostile hostile.c -lpthread
 *
 * The daemon starts it exactly like QEMU. It behaves like a compromised QEMU:
 * it serves just enough QMP to look alive and then tries to break out of its
 * jail in every way listed below, reporting each attempt on the serial
 * console.
 *
 * Command line (QEMU-like; unknown arguments are ignored):
 *   -chardev socket,id=qmp,fd=N,server=on,wait=off      N: listening Unix
 *            stream socket for QMP (path=P instead of fd=N: we listen on P)
 *   -chardev socket,id=serial0,fd=M,server=on,wait=off  M: listening Unix
 *            stream socket for the serial console (path=P also accepted)
 *   -append "... hostile=MODE hostile.paths=/a,/b hostile.sockets=/x,/y
 *            hostile.switchdir=/dir ..."
 *   -object memory-backend-file,...,mem-path=/proc/self/fd/K  (guest RAM)
 *   -netdev dgram,id=ID,local.type=fd,local.str=F   (connected datagram
 *            socket to the VM's switch port; the unix form with
 *            remote.path=P is also accepted)
 *   -device virtio-net-device,netdev=ID,mac=MAC     (MAC used in frames)
 *   -kernel, -initrd, -add-fd and everything else: ignored.
 *
 * QMP: on every connection to the QMP listener it sends a greeting
 * {"QMP": {...}} and answers one reply per command, echoing "id" if given:
 *   qmp_capabilities, stop, cont      -> {"return": {}} (stop/cont also
 *                                        emit STOP/RESUME events)
 *   query-status                      -> {"return": {"status": "running"
 *                                        or "paused", ...}}
 *   human-monitor-command             -> a fake "info registers" dump for
 *                                        "info registers...", "" otherwise
 *   query-version                     -> a version object
 *   system_powerdown                  -> reply, SHUTDOWN event, exit(0)
 *   quit                              -> reply, exit(0)
 *   anything else                     -> CommandNotFound error
 * Connections may come and go (the daemon reconnects after a restart); the
 * listeners are served for the whole life of the process. SIGTERM, SIGINT
 * and SIGHUP end it like QEMU: a SHUTDOWN event (reason "host-signal") to
 * every QMP client, then exit(0). (In the jail we are pid 1 of a pid
 * namespace, where a signal without a handler would be dropped.)
 *
 * Serial console: every line of the report is written to every console
 * connection; a connection that arrives later first gets the whole report
 * so far. Input from the console is read and dropped. Each line also goes to
 * stderr (the VMM's log) when that cannot block.
 *
 * Report: one line per probe,
 *     HOSTILE <probe-name> <BLOCKED|ESCAPED|CONTAINED|INFO> <detail>
 * and at the end
 *     HOSTILE-DONE escaped=<count> probes=<count>
 * BLOCKED: the attempt was refused (seccomp trap, errno). ESCAPED: the
 * attempt succeeded (or the syscall was reachable) when it must not.
 * CONTAINED: a resource limit or an isolation boundary stopped it. INFO:
 * facts about the environment. Probe names are stable; see README.md.
 *
 * Modes (hostile=MODE in -append):
 *   probe     (default) wait up to 10 s for a console connection, run the
 *             probe suite, then keep serving QMP and the console.
 *   forkbomb  create sleeping threads until pthread_create fails (at most
 *             100000), report, run the fork probes once (fork, vfork,
 *             clone3), keep serving.
 *   memhog    allocate and touch anonymous memory in 16 MiB chunks until
 *             killed (the cgroup OOM killer must do it) or 64 GiB (ESCAPED);
 *             an mmap failure (RLIMIT_AS) is CONTAINED; then keep serving.
 * Every mode first waits up to 10 s for a console connection.
 * Monitor mode: when argv[1] is "monitor" it stands in for Bulwark's
 * introspection monitor: run the probe suite, write the report to stderr,
 * then exit (closing fd 3, the socketpair to the daemon, so its pending
 * call fails at once with EOF).
 *
 * Safety: the program must not do harm even when it runs with no jail at
 * all (as root). Signals are signal 0 only; destructive calls (reboot,
 * kexec_load, umount of /, pivot_root, init_module, swapoff) get arguments
 * that make them fail after the permission check, and the errno tells
 * whether the call was permitted; a mount that succeeds is unmounted at
 * once; a file, node, FIFO or symlink that gets created is unlinked at once;
 * files are opened without O_CREAT/O_TRUNC and never written (except the
 * RLIMIT_FSIZE probe on our own stdout, which restores the size); a chroot
 * is undone; PTRACE_ATTACH targets only ourselves (or pid 0 for a
 * reachability check) and PTRACE_TRACEME is only called once ptrace is
 * known to be blocked; fork()ed children _exit at once or exec only
 * "sh -c 'exit 0'" / ourselves with "exit-now"; an in-process execve is
 * only made when it cannot succeed (missing file, oversized argument).
 *
 * Seccomp: a SIGSYS handler records that a trap fired and which syscall.
 * With SECCOMP_RET_TRAP the syscall is skipped and its return register holds
 * the syscall number (not -1), so every probe decides by whether the handler
 * fired while it ran (g_sigsys_count is reset before each attempt) and never
 * uses the return value of a trapped call.
 *
 * Before main() the static glibc start-up code calls brk, arch_prctl,
 * set_tid_address, set_robust_list, rseq, prlimit64 (RLIMIT_STACK),
 * readlink("/proc/self/exe"), getrandom and mprotect; the seccomp filter
 * must allow those (QEMU needs them too) or the process dies with SIGSYS
 * before it can report anything. Calls made outside probes (fstat, stat,
 * getcwd, getdents64, getrlimit, getppid, ppoll) are also checked for a
 * trap, so a stricter filter gives "seccomp" in a detail, not garbage.
 *
 * Every loop is bounded, except the intended ones: the serve loop (the
 * process lives as long as the VM) and the forkbomb's sleeping threads.
 * Every blocking wait has a timeout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif
#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef MNT_EXPIRE
#define MNT_EXPIRE 4
#endif

/* ------------------------------------------------------------------ */
/* Limits                                                              */
/* ------------------------------------------------------------------ */

#define MAX_LINE 1024          /* one report line, newline included */
#define MAX_NAME 200           /* probe name part of a line */
#define MAX_DETAIL 800         /* detail part of a line */
#define REPORT_CAP (1u << 20)  /* the report kept for late console clients */
#define MAX_LIST 64            /* entries of hostile.paths / .sockets */
#define MAX_CONNS 8            /* QMP and console connections each */
#define QMP_BUF 65536          /* one QMP connection's input buffer */
#define MAX_NICS 8
#define MAX_TIDS 256
#define CONSOLE_WAIT_MS 10000  /* wait for the first console connection */
#define FORKBOMB_MAX 100000
#define MEMHOG_CHUNK (16u << 20)
#define MEMHOG_MAX_CHUNKS 4096 /* 4096 * 16 MiB = 64 GiB */

enum { MODE_PROBE, MODE_FORKBOMB, MODE_MEMHOG, MODE_EXIT, MODE_HANG, MODE_FLOOD };

/* ------------------------------------------------------------------ */
/* Global state                                                        */
/* ------------------------------------------------------------------ */

/* Set by the SIGSYS handler. The program is single-threaded except for the
 * forkbomb's sleeping threads, which make no trapped calls. */
static volatile sig_atomic_t g_sigsys_count;
static volatile sig_atomic_t g_sigsys_nr;
/* Set by SIGTERM/SIGINT/SIGHUP: shut down like QEMU does. In the jail we are
 * pid 1 of our pid namespace, where a signal without a handler is dropped,
 * so without these handlers the daemon could only SIGKILL us. */
static volatile sig_atomic_t g_term_signal;

static int g_monitor;          /* argv[1] == "monitor" */
static int g_mode = MODE_PROBE;
static int g_qmp_listen = -1;
static int g_serial_listen = -1;
static int g_ram_fd = -1;
static char g_ram_path[PATH_MAX];
static char g_switchdir[PATH_MAX];
static char *g_paths[MAX_LIST];
static int g_npaths;
static char *g_sockets[MAX_LIST];
static int g_nsockets;

struct nic {
	char id[64];
	int fd;                  /* local.type=fd: connected socket, else -1 */
	char remote[108];        /* remote.type=unix: path, else "" */
	unsigned char mac[6];
	int has_mac;
};
static struct nic g_nics[MAX_NICS];
static int g_nnics;

static char *g_report;         /* every line written so far */
static size_t g_report_len;
static int g_report_dropped;   /* lines that did not fit in g_report */
static int g_escaped, g_probes;

struct qconn {
	int fd;                  /* -1: free slot */
	size_t len;
	char buf[QMP_BUF];
};
struct cconn {
	int fd;                  /* -1: free slot */
	size_t sent;             /* bytes of g_report already written */
};
static struct qconn g_qmp[MAX_CONNS];
static struct cconn g_con[MAX_CONNS];
static int g_console_seen;     /* console connections ever accepted */
static int g_paused;
static int g_poll_trapped;     /* ppoll trapped: use poll instead */

static int g_tids[MAX_TIDS];   /* our own thread ids */
static int g_ntids;
static pid_t g_pid;
static char g_self_exe_marker; /* an address in our own image */

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* fmt is a bounded snprintf whose truncation is silent and intended. */
static void fmt(char *buf, size_t size, const char *f, ...)
	__attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t size, const char *f, ...)
{
	va_list ap;

	if (size == 0)
		return;
	va_start(ap, f);
	if (vsnprintf(buf, size, f, ap) < 0)
		buf[0] = '\0';
	va_end(ap);
}

/* sbuf builds a detail string; once full it ends in "...". */
struct sbuf {
	char s[MAX_DETAIL];
	size_t len;
	int full;
};

static void sb_add(struct sbuf *b, const char *f, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_add(struct sbuf *b, const char *f, ...)
{
	va_list ap;
	size_t room;
	int n;

	if (b->full)
		return;
	room = sizeof(b->s) - b->len;
	va_start(ap, f);
	n = vsnprintf(b->s + b->len, room, f, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= room) {
		b->full = 1;
		b->len = sizeof(b->s) - 1;
		memcpy(b->s + sizeof(b->s) - 4, "...", 4);
		return;
	}
	b->len += (size_t)n;
}

static void sb_init(struct sbuf *b)
{
	b->s[0] = '\0';
	b->len = 0;
	b->full = 0;
}

static void ignore_result(long r)
{
	(void)r;
}

static const char *errname(int e)
{
	static char others[4][16]; /* a few unknown ones may share a line */
	static unsigned int next;
	char *other;

	switch (e) {
	case 0: return "OK";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case ENOEXEC: return "ENOEXEC";
	case EBADF: return "EBADF";
	case ECHILD: return "ECHILD";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ENOTTY: return "ENOTTY";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case ESPIPE: return "ESPIPE";
	case EROFS: return "EROFS";
	case EMLINK: return "EMLINK";
	case EPIPE: return "EPIPE";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ELOOP: return "ELOOP";
	case ENOKEY: return "ENOKEY";
	case ENOTSOCK: return "ENOTSOCK";
	case EDESTADDRREQ: return "EDESTADDRREQ";
	case EMSGSIZE: return "EMSGSIZE";
	case EPROTOTYPE: return "EPROTOTYPE";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EADDRINUSE: return "EADDRINUSE";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case ENETDOWN: return "ENETDOWN";
	case ENETUNREACH: return "ENETUNREACH";
	case ECONNABORTED: return "ECONNABORTED";
	case ECONNRESET: return "ECONNRESET";
	case ENOBUFS: return "ENOBUFS";
	case EISCONN: return "EISCONN";
	case ENOTCONN: return "ENOTCONN";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case EALREADY: return "EALREADY";
	case EINPROGRESS: return "EINPROGRESS";
	case ESTALE: return "ESTALE";
	case EDQUOT: return "EDQUOT";
	case ECANCELED: return "ECANCELED";
	case EOWNERDEAD: return "EOWNERDEAD";
	default:
		other = others[next++ % 4];
		fmt(other, sizeof(others[0]), "E%d", e);
		return other;
	}
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sys_poll is ppoll (what QEMU uses), or poll if ppoll is trapped. */
static int sys_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	struct timespec ts;
	int r;

	if (!g_poll_trapped) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
		g_sigsys_count = 0;
		r = ppoll(fds, n, timeout_ms < 0 ? NULL : &ts, NULL);
		if (!g_sigsys_count)
			return r;
		g_poll_trapped = 1;
	}
	g_sigsys_count = 0;
	r = poll(fds, n, timeout_ms);
	if (g_sigsys_count) {
		/* Neither is allowed: nothing to wait with; give up this round. */
		errno = ENOSYS;
		return -1;
	}
	return r;
}

static void msleep(int ms)
{
	ignore_result(sys_poll(NULL, 0, ms));
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		ignore_result(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

/* get_rlimit is getrlimit that also fails when the call was trapped (a
 * trapped call would "succeed" and leave rl uninitialised). */
static int get_rlimit(int res, struct rlimit *rl)
{
	int r;

	memset(rl, 0, sizeof(*rl));
	g_sigsys_count = 0;
	r = getrlimit(res, rl);
	if (g_sigsys_count) {
		errno = ENOSYS;
		return -1;
	}
	return r;
}

/* safe_stat / safe_fstat fail with ENOSYS when the call was trapped (a
 * trapped stat "succeeds" with st left as it was: zeroed here). */
static int safe_stat(const char *path, struct stat *st)
{
	int r;

	memset(st, 0, sizeof(*st));
	g_sigsys_count = 0;
	r = stat(path, st);
	if (g_sigsys_count) {
		errno = ENOSYS;
		return -1;
	}
	return r;
}

static int safe_fstat(int fd, struct stat *st)
{
	int r;

	memset(st, 0, sizeof(*st));
	g_sigsys_count = 0;
	r = fstat(fd, st);
	if (g_sigsys_count) {
		errno = ENOSYS;
		return -1;
	}
	return r;
}

/* safe_getppid: -1 when trapped (in a pid namespace the parent is 0). */
static int safe_getppid(void)
{
	int r;

	g_sigsys_count = 0;
	r = (int)getppid();
	return g_sigsys_count ? -1 : r;
}

/* safe_getcwd writes our cwd, or "(ERRNO)", into buf. */
static void safe_getcwd(char *buf, size_t size)
{
	char *r;

	memset(buf, 0, size);
	g_sigsys_count = 0;
	r = getcwd(buf, size);
	if (g_sigsys_count || !r || buf[0] != '/')
		fmt(buf, size, "(%s)", g_sigsys_count ? "seccomp" : errname(errno));
}

/* read_file reads at most size-1 bytes of a (small) file; returns the
 * length or -errno; -ENOSYS when the open was trapped. */
static long read_file(const char *path, char *buf, size_t size)
{
	long total = 0;
	int fd, i;

	if (size == 0)
		return -EINVAL;
	g_sigsys_count = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (g_sigsys_count)
		return -ENOSYS;
	if (fd < 0)
		return -errno;
	for (i = 0; i < 64 && (size_t)total < size - 1; i++) {
		ssize_t r = read(fd, buf + total, size - 1 - (size_t)total);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		total += r;
	}
	buf[total] = '\0';
	close(fd);
	return total;
}

struct linux_dirent64_ {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

typedef int (*dir_cb)(const char *name, unsigned char type, void *arg);

/* dir_walk calls cb for every entry but . and .. (at most 65536 entries;
 * cb returns nonzero to stop). Returns the count, or -errno (-ENOSYS when
 * the open was trapped). Uses getdents64 directly: no libc state. */
static int dir_walk(const char *path, dir_cb cb, void *arg)
{
	char buf[16384] __attribute__((aligned(8)));
	int fd, iter, count = 0;

	g_sigsys_count = 0;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	if (g_sigsys_count)
		return -ENOSYS;
	if (fd < 0)
		return -errno;
	for (iter = 0; iter < 4096 && count < 65536; iter++) {
		long n, off = 0;

		g_sigsys_count = 0;
		n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (g_sigsys_count) {
			/* The "length" is the syscall number: buf is garbage. */
			close(fd);
			return count ? count : -ENOSYS;
		}
		if (n <= 0 || n > (long)sizeof(buf))
			break;
		while (off < n) {
			struct linux_dirent64_ *d = (void *)(buf + off);
			size_t reclen = d->d_reclen;

			if (reclen <= offsetof(struct linux_dirent64_, d_name) || (long)reclen > n - off ||
			    !memchr(d->d_name, '\0', reclen - offsetof(struct linux_dirent64_, d_name)))
				break;
			off += (long)reclen;
			if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
				continue;
			count++;
			if (cb(d->d_name, d->d_type, arg)) {
				close(fd);
				return count;
			}
		}
	}
	close(fd);
	return count;
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int tid_cb(const char *name, unsigned char type, void *arg)
{
	(void)type;
	(void)arg;
	if (all_digits(name) && g_ntids < MAX_TIDS)
		g_tids[g_ntids++] = atoi(name);
	return g_ntids >= MAX_TIDS;
}

static void load_own_tids(void)
{
	g_ntids = 0;
	if (dir_walk("/proc/self/task", tid_cb, NULL) < 0 || g_ntids == 0)
		g_tids[g_ntids++] = (int)getpid();
}

/* is_own: pid is our process or one of its threads. */
static int is_own(int pid)
{
	int i;

	if (pid == g_pid)
		return 1;
	for (i = 0; i < g_ntids; i++)
		if (g_tids[i] == pid)
			return 1;
	return 0;
}

/* proc_self_path: path is inside our own /proc/<pid> (not via root or
 * cwd, which lead back into the file system). */
static int proc_self_path(const char *path)
{
	char comp[32];
	const char *p, *rest;
	size_t n;
	int self;

	if (strncmp(path, "/proc/", 6) != 0)
		return 0;
	p = path + 6;
	rest = strchr(p, '/');
	n = rest ? (size_t)(rest - p) : strlen(p);
	if (n == 0 || n >= sizeof(comp))
		return 0;
	memcpy(comp, p, n);
	comp[n] = '\0';
	if (strcmp(comp, "self") == 0 || strcmp(comp, "thread-self") == 0)
		self = 1;
	else
		self = all_digits(comp) && is_own(atoi(comp));
	if (!self)
		return 0;
	if (!rest)
		return 1;
	rest++;
	if ((strncmp(rest, "root", 4) == 0 && (rest[4] == '/' || rest[4] == '\0')) ||
	    (strncmp(rest, "cwd", 3) == 0 && (rest[3] == '/' || rest[3] == '\0')))
		return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Trapped-syscall bookkeeping                                         */
/* ------------------------------------------------------------------ */

static void on_term(int sig)
{
	g_term_signal = sig;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	g_sigsys_count++;
	g_sigsys_nr = si->si_syscall;
}

/* A try is the outcome of one attempt: TRY resets the trap counter and
 * errno, runs the expression and records both. When trapped is set, ret is
 * meaningless (the syscall number) and must not be used. */
struct try {
	long ret;
	int err;
	int trapped;
	int nr;
};

#define TRY(t, expr)                                     \
	do {                                             \
		g_sigsys_count = 0;                      \
		errno = 0;                               \
		(t).ret = (long)(expr);                  \
		(t).err = errno;                         \
		(t).trapped = g_sigsys_count != 0;       \
		(t).nr = (int)g_sigsys_nr;               \
	} while (0)

static const char *try_str(const struct try *t)
{
	static char s[64];

	if (t->trapped)
		fmt(s, sizeof(s), "seccomp(%d)", t->nr);
	else if (t->ret < 0)
		fmt(s, sizeof(s), "%s", errname(t->err));
	else
		fmt(s, sizeof(s), "ok");
	return s;
}

/* ------------------------------------------------------------------ */
/* Report and console                                                  */
/* ------------------------------------------------------------------ */

static void service_step(int timeout_ms);

static void con_close(struct cconn *c)
{
	close(c->fd);
	c->fd = -1;
}

/* con_flush writes what this console connection has not had yet, without
 * blocking; the rest goes out when the socket is writable again. */
static void con_flush(struct cconn *c)
{
	int i;

	for (i = 0; i < 64 && c->fd >= 0 && c->sent < g_report_len; i++) {
		ssize_t w = write(c->fd, g_report + c->sent, g_report_len - c->sent);

		if (w > 0) {
			c->sent += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		con_close(c);
	}
}

static void con_flush_all(void)
{
	int i;

	for (i = 0; i < MAX_CONNS; i++)
		if (g_con[i].fd >= 0)
			con_flush(&g_con[i]);
}

/* stderr_write: in monitor mode stderr is where the report goes; for the
 * VMM it is the log, written only when that cannot block. */
static void stderr_write(const char *s, size_t n)
{
	struct pollfd p = { .fd = 2, .events = POLLOUT };
	int i;

	if (!g_monitor && (sys_poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT)))
		return;
	for (i = 0; i < 16 && n > 0; i++) {
		ssize_t w = write(2, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void emit(const char *line, size_t n)
{
	if (g_report_len + n <= REPORT_CAP) {
		memcpy(g_report + g_report_len, line, n);
		g_report_len += n;
	} else {
		g_report_dropped++;
	}
	stderr_write(line, n);
	con_flush_all();
	service_step(0);
}

/* clean copies s into out, replacing control characters (and, for names,
 * spaces) so every report line stays one line of whitespace-split fields. */
static void clean(char *out, size_t size, const char *s, int is_name)
{
	size_t i, n = strlen(s);

	if (size == 0)
		return;
	if (n >= size)
		n = size - 1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			c = '?';
		else if (is_name && c == ' ')
			c = '_';
		out[i] = (char)c;
	}
	out[n] = '\0';
	if (strlen(s) >= size && size > 4)
		memcpy(out + size - 4, "...", 4);
}

static void report(const char *name, const char *verdict, const char *f, ...)
	__attribute__((format(printf, 3, 4)));
static void report(const char *name, const char *verdict, const char *f, ...)
{
	char raw[MAX_DETAIL], detail[MAX_DETAIL], cname[MAX_NAME], line[MAX_LINE];
	va_list ap;
	size_t n;

	va_start(ap, f);
	if (vsnprintf(raw, sizeof(raw), f, ap) < 0)
		raw[0] = '\0';
	va_end(ap);
	clean(detail, sizeof(detail), raw, 0);
	clean(cname, sizeof(cname), name, 1);
	if (detail[0])
		fmt(line, sizeof(line) - 1, "HOSTILE %s %s %s", cname, verdict, detail);
	else
		fmt(line, sizeof(line) - 1, "HOSTILE %s %s", cname, verdict);
	n = strlen(line);
	line[n++] = '\n';
	if (strcmp(verdict, "ESCAPED") == 0)
		g_escaped++;
	g_probes++;
	emit(line, n);
}

static void report_done(void)
{
	char line[128];

	if (g_report_dropped > 0) {
		fmt(line, sizeof(line), "HOSTILE report-truncated INFO dropped=%d\n", g_report_dropped);
		emit(line, strlen(line));
	}

	fmt(line, sizeof(line), "HOSTILE-DONE escaped=%d probes=%d\n", g_escaped, g_probes);
	emit(line, strlen(line));
}

/* ------------------------------------------------------------------ */
/* Minimal JSON for QMP                                                */
/* ------------------------------------------------------------------ */

#define JSON_INCOMPLETE (-1L)
#define JSON_INVALID (-2L)

static size_t json_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	return i;
}

/* json_end returns the index just past the value starting at s[i], or
 * JSON_INCOMPLETE / JSON_INVALID. Nesting deeper than 64 is invalid. */
static long json_end(const char *s, size_t n, size_t i)
{
	size_t j;
	int depth = 0, instr = 0;

	if (i >= n)
		return JSON_INCOMPLETE;
	if (s[i] == '"') {
		for (j = i + 1; j < n; j++) {
			if (s[j] == '\\')
				j++;
			else if (s[j] == '"')
				return (long)j + 1;
		}
		return JSON_INCOMPLETE;
	}
	if (s[i] == '{' || s[i] == '[') {
		for (j = i; j < n; j++) {
			char c = s[j];

			if (instr) {
				if (c == '\\')
					j++;
				else if (c == '"')
					instr = 0;
				continue;
			}
			if (c == '"') {
				instr = 1;
			} else if (c == '{' || c == '[') {
				if (++depth > 64)
					return JSON_INVALID;
			} else if (c == '}' || c == ']') {
				if (--depth == 0)
					return (long)j + 1;
			}
		}
		return JSON_INCOMPLETE;
	}
	for (j = i; j < n && !strchr(",}] \t\r\n:", s[j]); j++)
		;
	if (j == i)
		return JSON_INVALID;
	if (j == n)
		return JSON_INCOMPLETE;
	return (long)j;
}

/* json_member finds key in the complete object obj[0..n): sets the value
 * span and returns 1, or returns 0. Keys are compared raw (no escapes). */
static int json_member(const char *obj, size_t n, const char *key,
		       const char **val, size_t *vlen)
{
	size_t i = json_ws(obj, n, 0), klen = strlen(key);
	int k;

	if (i >= n || obj[i] != '{')
		return 0;
	i++;
	for (k = 0; k < 256; k++) {
		long kend, vend;
		size_t ks, vs;

		i = json_ws(obj, n, i);
		if (i >= n || obj[i] != '"')
			return 0;
		kend = json_end(obj, n, i);
		if (kend < 0)
			return 0;
		ks = i + 1;
		i = json_ws(obj, n, (size_t)kend);
		if (i >= n || obj[i] != ':')
			return 0;
		i = json_ws(obj, n, i + 1);
		vend = json_end(obj, n, i);
		if (vend < 0)
			return 0;
		vs = i;
		if ((size_t)kend - 1 - ks == klen && memcmp(obj + ks, key, klen) == 0) {
			*val = obj + vs;
			*vlen = (size_t)vend - vs;
			return 1;
		}
		i = json_ws(obj, n, (size_t)vend);
		if (i >= n || obj[i] != ',')
			return 0;
		i++;
	}
	return 0;
}

/* json_str decodes a JSON string value into out (\uXXXX becomes '?'). */
static int json_str(const char *v, size_t vlen, char *out, size_t size)
{
	size_t i, o = 0;

	if (size == 0 || vlen < 2 || v[0] != '"' || v[vlen - 1] != '"')
		return 0;
	for (i = 1; i + 1 < vlen && o + 1 < size; i++) {
		char c = v[i];

		if (c == '\\' && i + 2 < vlen) {
			c = v[++i];
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': c = '?'; i += 4; break;
			default: break;
			}
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return 1;
}

/* json_quote writes s as a JSON string literal (quotes included). */
static void json_quote(char *out, size_t size, const char *s)
{
	size_t o = 0;

	if (size < 3)
		return;
	out[o++] = '"';
	for (; *s && o + 8 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c == '\r') {
			out[o++] = '\\';
			out[o++] = 'r';
		} else if (c < 0x20) {
			fmt(out + o, size - o, "\\u%04x", c);
			o += 6;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* ------------------------------------------------------------------ */
/* QMP server                                                          */
/* ------------------------------------------------------------------ */

static void qmp_close(struct qconn *q)
{
	close(q->fd);
	q->fd = -1;
	q->len = 0;
}

/* qmp_send writes a whole message, waiting at most about 5 s. */
static void qmp_send(struct qconn *q, const char *s)
{
	size_t n = strlen(s);
	int i;

	for (i = 0; i < 50 && q->fd >= 0 && n > 0; i++) {
		ssize_t w = write(q->fd, s, n);

		if (w > 0) {
			s += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = q->fd, .events = POLLOUT };

			ignore_result(sys_poll(&p, 1, 100));
			continue;
		}
		break;
	}
	if (n > 0 && q->fd >= 0)
		qmp_close(q);
}

static void qmp_event(struct qconn *q, const char *name, const char *data)
{
	char msg[512];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (data)
		fmt(msg, sizeof(msg),
		    "{\"timestamp\": {\"seconds\": %lld, \"microseconds\": %ld}, \"event\": \"%s\", \"data\": %s}\r\n",
		    (long long)ts.tv_sec, ts.tv_nsec / 1000, name, data);
	else
		fmt(msg, sizeof(msg),
		    "{\"timestamp\": {\"seconds\": %lld, \"microseconds\": %ld}, \"event\": \"%s\"}\r\n",
		    (long long)ts.tv_sec, ts.tv_nsec / 1000, name);
	qmp_send(q, msg);
}

/* A register dump in the format of QEMU's "info registers" (x86-64) with
 * plausible long-mode values, so a caller parsing it finds one vCPU. */
static const char fake_registers[] =
	"CPU#0\r\n"
	"RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000001 RDX=0000000000000000\r\n"
	"RSI=0000000000000000 RDI=0000000000000000 RBP=0000000000000000 RSP=ffffffff82a03e78\r\n"
	"RIP=ffffffff81e0e2ab RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n"
	"FS =0000 0000000000000000 ffffffff 00c00000\r\n"
	"GS =0000 ffff88807dc00000 ffffffff 00c00000\r\n"
	"IDT=     fffffe0000000000 00000fff\r\n"
	"CR0=80050033 CR2=0000000000000000 CR3=000000000260a000 CR4=00350ef0\r\n"
	"EFER=0000000000000d01\r\n";

static void finish_and_exit(void)
{
	long deadline = now_ms() + 1000;
	int i, pending;

	/* Give console clients up to 1 s to take what they have not read. */
	for (i = 0; i < 100 && now_ms() < deadline; i++) {
		con_flush_all();
		pending = 0;
		for (int c = 0; c < MAX_CONNS; c++)
			if (g_con[c].fd >= 0 && g_con[c].sent < g_report_len)
				pending = 1;
		if (!pending)
			break;
		msleep(10);
	}
	exit(0);
}

/* terminate_on_signal: like QEMU, a SHUTDOWN event (reason host-signal)
 * to every QMP client, then exit 0. */
static void terminate_on_signal(void)
{
	char msg[96];
	int i;

	fmt(msg, sizeof(msg), "hostile: terminating on signal %d\n", (int)g_term_signal);
	stderr_write(msg, strlen(msg));
	for (i = 0; i < MAX_CONNS; i++)
		if (g_qmp[i].fd >= 0)
			qmp_event(&g_qmp[i], "SHUTDOWN", "{\"guest\": false, \"reason\": \"host-signal\"}");
	finish_and_exit();
}

static void qmp_handle(struct qconn *q, const char *msg, size_t n)
{
	char cmd[64], idpart[300], reply[4096], line[256];
	const char *v;
	size_t vlen;

	idpart[0] = '\0';
	if (json_member(msg, n, "id", &v, &vlen) && vlen < 256)
		fmt(idpart, sizeof(idpart), ", \"id\": %.*s", (int)vlen, v);
	if (!(json_member(msg, n, "execute", &v, &vlen) || json_member(msg, n, "exec-oob", &v, &vlen)) ||
	    !json_str(v, vlen, cmd, sizeof(cmd))) {
		fmt(reply, sizeof(reply),
		    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member 'execute'\"}%s}\r\n",
		    idpart);
		qmp_send(q, reply);
		return;
	}
	if (strcmp(cmd, "qmp_capabilities") == 0) {
		fmt(reply, sizeof(reply), "{\"return\": {}%s}\r\n", idpart);
		qmp_send(q, reply);
	} else if (strcmp(cmd, "query-status") == 0) {
		fmt(reply, sizeof(reply),
		    "{\"return\": {\"status\": \"%s\", \"singlestep\": false, \"running\": %s}%s}\r\n",
		    g_paused ? "paused" : "running", g_paused ? "false" : "true", idpart);
		qmp_send(q, reply);
	} else if (strcmp(cmd, "stop") == 0) {
		g_paused = 1;
		fmt(reply, sizeof(reply), "{\"return\": {}%s}\r\n", idpart);
		qmp_send(q, reply);
		qmp_event(q, "STOP", NULL);
	} else if (strcmp(cmd, "cont") == 0) {
		g_paused = 0;
		fmt(reply, sizeof(reply), "{\"return\": {}%s}\r\n", idpart);
		qmp_send(q, reply);
		qmp_event(q, "RESUME", NULL);
	} else if (strcmp(cmd, "system_powerdown") == 0) {
		fmt(reply, sizeof(reply), "{\"return\": {}%s}\r\n", idpart);
		qmp_send(q, reply);
		qmp_event(q, "SHUTDOWN", "{\"guest\": true, \"reason\": \"guest-shutdown\"}");
		finish_and_exit();
	} else if (strcmp(cmd, "quit") == 0) {
		fmt(reply, sizeof(reply), "{\"return\": {}%s}\r\n", idpart);
		qmp_send(q, reply);
		finish_and_exit();
	} else if (strcmp(cmd, "query-version") == 0) {
		fmt(reply, sizeof(reply),
		    "{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 8}, \"package\": \"hostile\"}%s}\r\n",
		    idpart);
		qmp_send(q, reply);
	} else if (strcmp(cmd, "human-monitor-command") == 0) {
		const char *a, *c;
		size_t alen, clen;
		char quoted[2048];

		line[0] = '\0';
		if (json_member(msg, n, "arguments", &a, &alen) &&
		    json_member(a, alen, "command-line", &c, &clen))
			json_str(c, clen, line, sizeof(line));
		json_quote(quoted, sizeof(quoted),
			   strncmp(line, "info registers", 14) == 0 ? fake_registers : "");
		fmt(reply, sizeof(reply), "{\"return\": %s%s}\r\n", quoted, idpart);
		qmp_send(q, reply);
	} else {
		char qcmd[160];

		json_quote(qcmd, sizeof(qcmd), cmd);
		/* qcmd carries its own quotes; strip them for the sentence. */
		qcmd[strlen(qcmd) - 1] = '\0';
		fmt(reply, sizeof(reply),
		    "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command %s has not been found\"}%s}\r\n",
		    qcmd + 1, idpart);
		qmp_send(q, reply);
	}
}

/* qmp_input handles every complete JSON object in the buffer. */
static void qmp_input(struct qconn *q)
{
	size_t i = 0;
	int k;

	/* Each round consumes at least 2 bytes, so this ends with the buffer. */
	for (k = 0; k < QMP_BUF && q->fd >= 0; k++) {
		long end;
		char *brace;

		i = json_ws(q->buf, q->len, i);
		if (i >= q->len)
			break;
		if (q->buf[i] != '{') {
			/* Not an object: skip to the next one (QEMU would
			 * answer with a parse error; nothing expects that). */
			brace = memchr(q->buf + i, '{', q->len - i);
			if (!brace) {
				i = q->len;
				break;
			}
			i = (size_t)(brace - q->buf);
		}
		end = json_end(q->buf, q->len, i);
		if (end == JSON_INCOMPLETE)
			break;
		if (end == JSON_INVALID) {
			qmp_close(q);
			return;
		}
		qmp_handle(q, q->buf + i, (size_t)end - i);
		i = (size_t)end;
	}
	if (q->fd < 0)
		return;
	if (i > 0) {
		memmove(q->buf, q->buf + i, q->len - i);
		q->len -= i;
	}
	if (q->len == sizeof(q->buf))
		qmp_close(q); /* one message larger than the buffer */
}

/* accept_on accepts one connection; returns -1 when the listener is
 * unusable (not a listening socket, accept trapped) and must be dropped, so
 * the serve loop cannot spin on it. */
static int accept_on(int listener, int is_qmp)
{
	int fd, i;

	g_sigsys_count = 0;
	fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (g_sigsys_count)
		return -1;
	if (fd < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == EMFILE ||
		    errno == ENFILE || errno == ECONNABORTED || errno == ENOBUFS || errno == ENOMEM)
			return 0;
		return -1;
	}
	for (i = 0; i < MAX_CONNS; i++) {
		if (is_qmp && g_qmp[i].fd < 0) {
			g_qmp[i].fd = fd;
			g_qmp[i].len = 0;
			qmp_send(&g_qmp[i],
				 "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 8}, "
				 "\"package\": \"hostile\"}, \"capabilities\": [\"oob\"]}}\r\n");
			return 0;
		}
		if (!is_qmp && g_con[i].fd < 0) {
			g_con[i].fd = fd;
			g_con[i].sent = 0;
			g_console_seen++;
			con_flush(&g_con[i]);
			return 0;
		}
	}
	close(fd); /* all slots busy */
	return 0;
}

/* service_step waits at most timeout_ms for QMP/console activity and
 * handles what arrived. Called between probes and from the serve loop. */
static void service_step(int timeout_ms)
{
	struct pollfd pfd[2 + 2 * MAX_CONNS];
	int kind[2 + 2 * MAX_CONNS], idx[2 + 2 * MAX_CONNS];
	int n = 0, i, r;

	if (g_term_signal)
		terminate_on_signal();

	if (g_qmp_listen >= 0) {
		pfd[n] = (struct pollfd){ .fd = g_qmp_listen, .events = POLLIN };
		kind[n] = 0;
		idx[n++] = 0;
	}
	if (g_serial_listen >= 0) {
		pfd[n] = (struct pollfd){ .fd = g_serial_listen, .events = POLLIN };
		kind[n] = 1;
		idx[n++] = 0;
	}
	for (i = 0; i < MAX_CONNS; i++) {
		if (g_qmp[i].fd >= 0) {
			pfd[n] = (struct pollfd){ .fd = g_qmp[i].fd, .events = POLLIN };
			kind[n] = 2;
			idx[n++] = i;
		}
		if (g_con[i].fd >= 0) {
			pfd[n] = (struct pollfd){ .fd = g_con[i].fd, .events = POLLIN };
			if (g_con[i].sent < g_report_len)
				pfd[n].events |= POLLOUT;
			kind[n] = 3;
			idx[n++] = i;
		}
	}
	if (n == 0) {
		if (timeout_ms > 0)
			msleep(timeout_ms);
		return;
	}
	r = sys_poll(pfd, (nfds_t)n, timeout_ms);
	if (r <= 0) {
		if (r < 0 && errno == ENOSYS && timeout_ms > 0)
			msleep(timeout_ms);
		return;
	}
	for (i = 0; i < n; i++) {
		short ev = pfd[i].revents;

		if (!ev)
			continue;
		switch (kind[i]) {
		case 0:
		case 1:
			if (((ev & POLLIN) && accept_on(pfd[i].fd, kind[i] == 0) < 0) || (ev & POLLNVAL) ||
			    ((ev & (POLLERR | POLLHUP)) && !(ev & POLLIN))) {
				/* unusable: stop polling it rather than spin */
				if (kind[i] == 0)
					g_qmp_listen = -1;
				else
					g_serial_listen = -1;
			}
			break;
		case 2: {
			struct qconn *q = &g_qmp[idx[i]];

			if (q->fd < 0)
				break;
			if (ev & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t rd = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);

				if (rd > 0) {
					q->len += (size_t)rd;
					qmp_input(q);
				} else if (rd == 0 || (errno != EAGAIN && errno != EINTR)) {
					qmp_close(q);
				}
			}
			break;
		}
		case 3: {
			struct cconn *c = &g_con[idx[i]];
			char junk[4096];

			if (c->fd < 0)
				break;
			if (ev & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t rd = read(c->fd, junk, sizeof(junk));

				if (rd == 0 || (rd < 0 && errno != EAGAIN && errno != EINTR)) {
					con_close(c);
					break;
				}
			}
			if (ev & POLLOUT)
				con_flush(c);
			break;
		}
		}
	}
}

/* serve_forever: the VMM lives until the daemon says quit or kills it. */
static void serve_forever(void) __attribute__((noreturn));
static void serve_forever(void)
{
	for (;;)
		service_step(1000);
}

static void wait_for_console(void)
{
	long deadline = now_ms() + CONSOLE_WAIT_MS;
	int i;

	if (g_serial_listen < 0)
		return;
	for (i = 0; i < 200 && g_console_seen == 0 && g_serial_listen >= 0 && now_ms() < deadline; i++)
		service_step(50);
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

/* opt_get finds key=value in a QEMU option string (",," is a literal
 * comma). Returns 1 and the value in out, or 0. */
static int opt_get(const char *opts, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	const char *p = opts;
	int k;

	for (k = 0; k < 256 && *p; k++) {
		const char *start = p;
		size_t o = 0;

		/* find the end of this token */
		while (*p && !(*p == ',' && p[1] != ',')) {
			if (*p == ',' && p[1] == ',')
				p++;
			p++;
		}
		if ((size_t)(p - start) > klen && strncmp(start, key, klen) == 0 && start[klen] == '=') {
			const char *v = start + klen + 1;

			while (v < p && o + 1 < size) {
				if (*v == ',' && v + 1 < p && v[1] == ',')
					v++;
				out[o++] = *v++;
			}
			out[o] = '\0';
			return 1;
		}
		if (*p == ',')
			p++;
	}
	return 0;
}

static int parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

/* fd_from_path: "/proc/self/fd/K" or "/dev/fdset/K"-style paths. */
static int fd_from_path(const char *path)
{
	if (strncmp(path, "/proc/self/fd/", 14) == 0)
		return parse_fd(path + 14);
	return -1;
}

/* listen_path: a chardev given as path= (the older daemon form). */
static int listen_path(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void split_list(const char *s, char **list, int *n)
{
	const char *p = s;
	int k;

	for (k = 0; k < 1024 && *p && *n < MAX_LIST; k++) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len > 0 && len < PATH_MAX) {
			char *item = malloc(len + 1);

			if (item) {
				memcpy(item, p, len);
				item[len] = '\0';
				list[(*n)++] = item;
			}
		}
		if (!e)
			break;
		p = e + 1;
	}
}

static void parse_append(const char *cmdline)
{
	const char *p = cmdline;
	int k;

	for (k = 0; k < 4096 && *p; k++) {
		char word[PATH_MAX * 2];
		size_t len;

		while (*p == ' ' || *p == '\t')
			p++;
		len = strcspn(p, " \t");
		if (len == 0)
			break;
		if (len < sizeof(word)) {
			memcpy(word, p, len);
			word[len] = '\0';
			if (strncmp(word, "hostile=", 8) == 0) {
				if (strcmp(word + 8, "forkbomb") == 0)
					g_mode = MODE_FORKBOMB;
				else if (strcmp(word + 8, "memhog") == 0)
					g_mode = MODE_MEMHOG;
				else if (strcmp(word + 8, "exit") == 0)
					g_mode = MODE_EXIT;
				else if (strcmp(word + 8, "hang") == 0)
					g_mode = MODE_HANG;
				else if (strcmp(word + 8, "flood") == 0)
					g_mode = MODE_FLOOD;
				else
					g_mode = MODE_PROBE;
			} else if (strncmp(word, "hostile.paths=", 14) == 0) {
				split_list(word + 14, g_paths, &g_npaths);
			} else if (strncmp(word, "hostile.sockets=", 16) == 0) {
				split_list(word + 16, g_sockets, &g_nsockets);
			} else if (strncmp(word, "hostile.switchdir=", 18) == 0) {
				fmt(g_switchdir, sizeof(g_switchdir), "%s", word + 18);
			}
		}
		p += len;
	}
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	unsigned int b[6];
	int i;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return 0;
	for (i = 0; i < 6; i++)
		mac[i] = (unsigned char)b[i];
	return 1;
}

static void parse_args(int argc, char **argv, int first)
{
	char v[PATH_MAX], id[64];
	int i;

	for (i = first; i + 1 < argc; i++) {
		const char *opt = argv[i], *arg = argv[i + 1];

		if (strcmp(opt, "-chardev") == 0) {
			int fd = -1;

			if (!opt_get(arg, "id", id, sizeof(id)))
				continue;
			if (opt_get(arg, "fd", v, sizeof(v)))
				fd = parse_fd(v);
			else if (opt_get(arg, "path", v, sizeof(v)))
				fd = listen_path(v);
			if (fd < 0)
				continue;
			if (strcmp(id, "qmp") == 0 || strncmp(id, "mon", 3) == 0)
				g_qmp_listen = fd;
			else if (strncmp(id, "serial", 6) == 0 || strcmp(id, "console") == 0)
				g_serial_listen = fd;
			i++;
		} else if (strcmp(opt, "-append") == 0) {
			parse_append(arg);
			i++;
		} else if (strcmp(opt, "-object") == 0) {
			if (strncmp(arg, "memory-backend-file", 19) == 0 &&
			    opt_get(arg, "mem-path", v, sizeof(v))) {
				g_ram_fd = fd_from_path(v);
				if (g_ram_fd < 0)
					fmt(g_ram_path, sizeof(g_ram_path), "%s", v);
			}
			i++;
		} else if (strcmp(opt, "-netdev") == 0) {
			if (strncmp(arg, "dgram", 5) == 0 && g_nnics < MAX_NICS) {
				struct nic *n = &g_nics[g_nnics];

				memset(n, 0, sizeof(*n));
				n->fd = -1;
				if (!opt_get(arg, "id", n->id, sizeof(n->id)))
					fmt(n->id, sizeof(n->id), "net%d", g_nnics);
				if (opt_get(arg, "local.type", v, sizeof(v)) && strcmp(v, "fd") == 0 &&
				    opt_get(arg, "local.str", v, sizeof(v)))
					n->fd = parse_fd(v);
				if (opt_get(arg, "remote.type", v, sizeof(v)) && strcmp(v, "unix") == 0 &&
				    opt_get(arg, "remote.path", v, sizeof(v)))
					fmt(n->remote, sizeof(n->remote), "%s", v);
				g_nnics++;
			}
			i++;
		} else if (strcmp(opt, "-device") == 0) {
			if (opt_get(arg, "netdev", id, sizeof(id)) && opt_get(arg, "mac", v, sizeof(v))) {
				for (int k = 0; k < g_nnics; k++)
					if (strcmp(g_nics[k].id, id) == 0)
						g_nics[k].has_mac = parse_mac(v, g_nics[k].mac);
			}
			i++;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Classification helpers                                              */
/* ------------------------------------------------------------------ */

/* deny_errno: errors that mean "refused" for a reachability probe. */
static int deny_errno(int e)
{
	return e == EPERM || e == EACCES || e == ENOSYS;
}

/* must_fail: for an operation that must not succeed. Trapped or any error
 * -> BLOCKED; success -> ESCAPED with okdetail. */
static void must_fail(const char *name, const struct try *t, const char *okdetail)
{
	if (t->trapped || t->ret < 0)
		report(name, "BLOCKED", "%s", try_str(t));
	else
		report(name, "ESCAPED", "%s", okdetail);
}

/* reach: for a call made with arguments that fail harmlessly once the
 * permission check passed. Trapped, EPERM, EACCES, ENOSYS -> BLOCKED;
 * success or any other errno means the call was reachable and permitted
 * -> ESCAPED. */
static void reach(const char *name, const struct try *t, const char *what)
{
	if (t->trapped || (t->ret < 0 && deny_errno(t->err)))
		report(name, "BLOCKED", "%s", try_str(t));
	else
		report(name, "ESCAPED", "%s reachable: %s", what, try_str(t));
}

/* describe_fd: what an opened descriptor is (type, size; for regular files
 * how many bytes one non-blocking read returned - never their content). */
static void describe_fd(int fd, int readable, char *out, size_t size)
{
	struct stat st;
	char buf[64];
	const char *type = "other";
	ssize_t r = -1;

	if (safe_fstat(fd, &st) < 0) {
		fmt(out, size, "fstat %s", errname(errno));
		return;
	}
	if (S_ISREG(st.st_mode))
		type = "file";
	else if (S_ISDIR(st.st_mode))
		type = "dir";
	else if (S_ISCHR(st.st_mode))
		type = "chardev";
	else if (S_ISBLK(st.st_mode))
		type = "blockdev";
	else if (S_ISFIFO(st.st_mode))
		type = "fifo";
	else if (S_ISSOCK(st.st_mode))
		type = "socket";
	if (readable && S_ISREG(st.st_mode))
		r = read(fd, buf, sizeof(buf));
	if (r >= 0)
		fmt(out, size, "%s size=%lld uid=%u read=%zd", type, (long long)st.st_size,
		    (unsigned)st.st_uid, r);
	else
		fmt(out, size, "%s size=%lld uid=%u", type, (long long)st.st_size, (unsigned)st.st_uid);
}

/* ------------------------------------------------------------------ */
/* Probes: environment (INFO)                                          */
/* ------------------------------------------------------------------ */

static int fd_cb(const char *name, unsigned char type, void *arg)
{
	struct sbuf *b = arg;
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	int i;

	(void)type;
	if (!all_digits(name))
		return 0;
	fmt(link, sizeof(link), "/proc/self/fd/%s", name);
	g_sigsys_count = 0;
	n = readlink(link, target, sizeof(target) - 1);
	if (g_sigsys_count || n < 0)
		return 0;
	target[n] = '\0';
	/* Skip the descriptor dir_walk itself holds on /proc/self/fd. */
	if (strstr(target, "/fd") && strncmp(target, "/proc/", 6) == 0)
		return 0;
	sb_add(b, "%s%s=%s", b->len ? " " : "", name, target);
	for (i = 0; i < g_npaths; i++) {
		size_t pl = strlen(g_paths[i]);

		if (target[0] == '/' && strncmp(target, g_paths[i], pl) == 0 &&
		    (target[pl] == '\0' || target[pl] == '/' || g_paths[i][pl - 1] == '/')) {
			report("inherited-fd-leak", "ESCAPED", "fd %s is %s (under %s)", name, target, g_paths[i]);
		}
	}
	return 0;
}

static void probe_environment(void)
{
	struct sbuf b;
	char cwd[PATH_MAX], buf[8192];
	long n;
	int r;
	static const struct { int res; const char *name; } lims[] = {
		{ RLIMIT_NOFILE, "NOFILE" }, { RLIMIT_NPROC, "NPROC" }, { RLIMIT_CORE, "CORE" },
		{ RLIMIT_FSIZE, "FSIZE" }, { RLIMIT_AS, "AS" }, { RLIMIT_MEMLOCK, "MEMLOCK" },
		{ RLIMIT_STACK, "STACK" },
	};

	safe_getcwd(cwd, sizeof(cwd));
	report("identity", "INFO", "pid=%d ppid=%d uid=%u euid=%u gid=%u egid=%u cwd=%s mode=%s%s",
	       (int)g_pid, safe_getppid(), (unsigned)getuid(), (unsigned)geteuid(), (unsigned)getgid(),
	       (unsigned)getegid(), cwd,
	       g_mode == MODE_PROBE ? "probe" : g_mode == MODE_FORKBOMB ? "forkbomb" : "memhog",
	       g_monitor ? " monitor" : "");

	sb_init(&b);
	r = dir_walk("/proc/self/fd", fd_cb, &b);
	if (r < 0)
		report("inherited-fds", "INFO", "/proc/self/fd: %s", errname(-r));
	else
		report("inherited-fds", "INFO", "%s", b.s);

	sb_init(&b);
	for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		struct rlimit rl;

		if (get_rlimit(lims[i].res, &rl) < 0)
			continue;
		if (rl.rlim_cur == RLIM_INFINITY)
			sb_add(&b, "%s%s=inf", b.len ? " " : "", lims[i].name);
		else
			sb_add(&b, "%s%s=%llu", b.len ? " " : "", lims[i].name, (unsigned long long)rl.rlim_cur);
		if (rl.rlim_max == RLIM_INFINITY)
			sb_add(&b, "/inf");
		else
			sb_add(&b, "/%llu", (unsigned long long)rl.rlim_max);
	}
	report("rlimits", "INFO", "%s", b.s);

	n = read_file("/proc/self/cgroup", buf, sizeof(buf));
	if (n < 0) {
		report("cgroup", "INFO", "/proc/self/cgroup: %s", errname((int)-n));
	} else {
		for (long i = 0; i < n; i++)
			if (buf[i] == '\n')
				buf[i] = ';';
		report("cgroup", "INFO", "%s", buf);
	}

	/* Mount points (field 5 of mountinfo) and their options (field 6). */
	n = read_file("/proc/self/mountinfo", buf, sizeof(buf));
	if (n < 0) {
		report("mounts", "INFO", "/proc/self/mountinfo: %s", errname((int)-n));
	} else {
		char *save = NULL, *line;
		int k = 0;

		sb_init(&b);
		for (line = strtok_r(buf, "\n", &save); line && k < 256; line = strtok_r(NULL, "\n", &save), k++) {
			char mp[256], opts[128];

			if (sscanf(line, "%*s %*s %*s %*s %255s %127s", mp, opts) == 2)
				sb_add(&b, "%s%s(%s)", b.len ? " " : "", mp, opts);
		}
		report("mounts", "INFO", "%s", b.s);
	}
}

/* ------------------------------------------------------------------ */
/* 1. open-host-files                                                  */
/* ------------------------------------------------------------------ */

/* Read: success -> ESCAPED (INFO for our own /proc entries, e.g.
 * /proc/1/environ when we are pid 1). Write: opened O_WRONLY without
 * O_TRUNC/O_CREAT and closed unwritten; success -> ESCAPED. Any error or a
 * trap -> BLOCKED. */
static void probe_open(const char *path, int wr)
{
	char name[MAX_NAME], desc[160];
	struct try t;
	int flags = (wr ? O_WRONLY : O_RDONLY) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;

	fmt(name, sizeof(name), "%s:%s", wr ? "open-write" : "open", path);
	TRY(t, open(path, flags));
	if (t.trapped || t.ret < 0) {
		report(name, "BLOCKED", "%s", try_str(&t));
		return;
	}
	describe_fd((int)t.ret, !wr, desc, sizeof(desc));
	close((int)t.ret);
	if (proc_self_path(path))
		report(name, "INFO", "own process: %s", desc);
	else
		report(name, "ESCAPED", "opened %s", desc);
}

static void probe_open_host_files(void)
{
	static const char *const paths[] = {
		"/etc/shadow", "/etc/passwd", "/root", "/var/lib/bulwark",
		"/proc/1/root/etc/shadow", "/proc/1/environ",
		"/proc/self/root/../../etc/shadow", "/sys/fs/cgroup/cgroup.procs",
	};
	size_t i;
	int k;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		probe_open(paths[i], 0);
		probe_open(paths[i], 1);
	}
	for (k = 0; k < g_npaths; k++) {
		probe_open(g_paths[k], 0);
		probe_open(g_paths[k], 1);
	}
}

/* ------------------------------------------------------------------ */
/* 2. list-root                                                        */
/* ------------------------------------------------------------------ */

static int list_cb(const char *name, unsigned char type, void *arg)
{
	struct sbuf *b = arg;

	sb_add(b, "%s%s%s", b->len ? "," : "", name, type == DT_DIR ? "/" : "");
	return b->full;
}

static void probe_list(const char *name, const char *path)
{
	struct sbuf b;
	int r;

	sb_init(&b);
	r = dir_walk(path, list_cb, &b);
	if (r < 0)
		report(name, "INFO", "%s: %s", path, r == -ENOSYS ? "seccomp" : errname(-r));
	else
		report(name, "INFO", "%s: n=%d %s", path, r, b.s);
}

/* ------------------------------------------------------------------ */
/* 3. proc-pids, kill                                                  */
/* ------------------------------------------------------------------ */

struct pids {
	int visible[64];
	int nvisible, nforeign;
};

static int pid_cb(const char *name, unsigned char type, void *arg)
{
	struct pids *p = arg;
	int pid;

	(void)type;
	if (!all_digits(name))
		return 0;
	pid = atoi(name);
	if (is_own(pid))
		return 0;
	if (p->nvisible < 64)
		p->visible[p->nvisible++] = pid;
	p->nforeign++;
	return p->nforeign > 100000;
}

/* proc-pids: any pid in /proc that is not ours -> ESCAPED.
 * kill-pid1: kill(1, 0); pid 1 is us in the jail -> INFO; success on a
 *   foreign pid 1 -> ESCAPED; ESRCH/EPERM/trap -> BLOCKED.
 * kill-low-pids: kill(pid, 0) for 2..50 minus our own tids; any success ->
 *   ESCAPED; else BLOCKED with counts (EPERM: exists but denied).
 * kill-all: kill(-1, 0) succeeds iff some other process may be signalled
 *   -> ESCAPED; ESRCH -> BLOCKED. Signal 0 only: nothing is delivered. */
static void probe_pids(void)
{
	struct pids p = { .nvisible = 0, .nforeign = 0 };
	struct sbuf b;
	struct try t;
	int r, pid, eperm = 0, esrch = 0, other = 0;

	r = dir_walk("/proc", pid_cb, &p);
	if (r < 0) {
		report("proc-pids", "CONTAINED", "/proc: %s", errname(-r));
	} else if (p.nforeign == 0) {
		report("proc-pids", "CONTAINED", "only our own pid %d visible", (int)g_pid);
	} else {
		sb_init(&b);
		for (int i = 0; i < p.nvisible; i++)
			sb_add(&b, "%s%d", i ? "," : "", p.visible[i]);
		report("proc-pids", "ESCAPED", "foreign=%d pids=%s", p.nforeign, b.s);
	}

	TRY(t, kill(1, 0));
	if (is_own(1))
		report("kill-pid1", "INFO", "pid 1 is ourselves: %s", try_str(&t));
	else
		must_fail("kill-pid1", &t, "signal 0 to a foreign pid 1 permitted");

	sb_init(&b);
	for (pid = 2; pid <= 50; pid++) {
		if (is_own(pid))
			continue;
		TRY(t, kill(pid, 0));
		if (t.trapped)
			other++;
		else if (t.ret == 0)
			sb_add(&b, "%s%d", b.len ? "," : "", pid);
		else if (t.err == EPERM)
			eperm++;
		else if (t.err == ESRCH)
			esrch++;
		else
			other++;
	}
	if (b.len)
		report("kill-low-pids", "ESCAPED", "signal 0 permitted to pids %s", b.s);
	else
		report("kill-low-pids", "BLOCKED", "esrch=%d eperm=%d other=%d", esrch, eperm, other);

	TRY(t, kill(-1, 0));
	must_fail("kill-all", &t, "kill(-1, 0) found other processes to signal");
}

/* ------------------------------------------------------------------ */
/* 4. daemon-fds                                                       */
/* ------------------------------------------------------------------ */

static int count_cb(const char *name, unsigned char type, void *arg)
{
	(void)name;
	(void)type;
	(void)arg;
	return 0;
}

/* Opening /proc/<pid>/fd of any process but ours -> ESCAPED. */
static void probe_daemon_fds(void)
{
	struct sbuf b;
	char path[64];
	int pid, tried = 0, ppid = safe_getppid();
	int errs[4] = { 0, 0, 0, 0 }; /* ENOENT, EACCES, EPERM, other */

	sb_init(&b);
	for (pid = 1; pid <= 65; pid++) {
		int target = pid <= 64 ? pid : ppid, r;

		if (target <= 0 || is_own(target) || (pid == 65 && ppid <= 64))
			continue;
		fmt(path, sizeof(path), "/proc/%d/fd", target);
		tried++;
		r = dir_walk(path, count_cb, NULL);
		if (r >= 0)
			sb_add(&b, "%s%d:%d", b.len ? "," : "", target, r);
		else if (r == -ENOENT)
			errs[0]++;
		else if (r == -EACCES)
			errs[1]++;
		else if (r == -EPERM)
			errs[2]++;
		else
			errs[3]++;
	}
	if (b.len)
		report("daemon-fds", "ESCAPED", "listed fds of pid:count %s", b.s);
	else
		report("daemon-fds", "BLOCKED", "tried=%d enoent=%d eacces=%d eperm=%d other=%d", tried,
		       errs[0], errs[1], errs[2], errs[3]);
}

/* ------------------------------------------------------------------ */
/* 5. connect-sockets                                                  */
/* ------------------------------------------------------------------ */

/* connect_unix: 0 connected, else errno; *trapped set on SIGSYS. A
 * non-blocking stream connect to a full backlog gives EAGAIN: the listener
 * was reached, which counts as connected. */
static int connect_unix(const char *path, int abstract, int type, int *trapped, int *nr)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path), off = abstract ? 1 : 0;
	socklen_t salen;
	struct try t;
	int fd, err;

	*trapped = 0;
	if (len + off >= sizeof(sa.sun_path))
		return ENAMETOOLONG;
	memcpy(sa.sun_path + off, path, len);
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + off + len + (abstract ? 0 : 1));
	TRY(t, socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (t.trapped || t.ret < 0) {
		*trapped = t.trapped;
		*nr = t.nr;
		return t.trapped ? ENOSYS : t.err;
	}
	fd = (int)t.ret;
	TRY(t, connect(fd, (struct sockaddr *)&sa, salen));
	err = t.ret == 0 ? 0 : t.err;
	if (t.trapped) {
		*trapped = 1;
		*nr = t.nr;
		err = ENOSYS;
	}
	close(fd);
	if (err == EAGAIN || err == EINPROGRESS)
		err = 0;
	return err;
}

/* connect:<path>: stream or datagram connect succeeds -> ESCAPED. */
static void probe_connect(const char *path)
{
	char name[MAX_NAME], ds[48], gs[48];
	int st, dt, snr = 0, dnr = 0, se, de;

	fmt(name, sizeof(name), "connect:%s", path);
	se = connect_unix(path, 0, SOCK_STREAM, &st, &snr);
	de = connect_unix(path, 0, SOCK_DGRAM, &dt, &dnr);
	if (st)
		fmt(ds, sizeof(ds), "seccomp(%d)", snr);
	else
		fmt(ds, sizeof(ds), "%s", se ? errname(se) : "connected");
	if (dt)
		fmt(gs, sizeof(gs), "seccomp(%d)", dnr);
	else
		fmt(gs, sizeof(gs), "%s", de ? errname(de) : "connected");
	report(name, (!st && se == 0) || (!dt && de == 0) ? "ESCAPED" : "BLOCKED", "stream=%s dgram=%s", ds, gs);
}

/* abstract-sockets: abstract Unix sockets are per network namespace; any
 * listed in /proc/net/unix that we can connect to -> ESCAPED. The
 * connections are closed at once, nothing is sent. */
static void probe_abstract(void)
{
	static char buf[65536];
	struct sbuf ok;
	char *save = NULL, *line;
	long n;
	int k, listed = 0, tried = 0;

	n = read_file("/proc/net/unix", buf, sizeof(buf));
	if (n < 0) {
		report("abstract-sockets", "BLOCKED", "/proc/net/unix: %s", n == -ENOSYS ? "seccomp" : errname((int)-n));
		return;
	}
	sb_init(&ok);
	line = strtok_r(buf, "\n", &save); /* header */
	for (k = 0; k < 4096 && line; k++) {
		char path[256];
		unsigned int type = 0, st = 0;
		int trapped, nr;

		line = strtok_r(NULL, "\n", &save);
		if (!line)
			break;
		/* Num RefCount Protocol Flags Type St Inode Path */
		if (sscanf(line, "%*s %*s %*s %*s %x %x %*s %255s", &type, &st, path) != 3 || path[0] != '@')
			continue;
		listed++;
		if (st != 1 || tried >= 16)
			continue;
		tried++;
		if (connect_unix(path + 1, 1, type == 2 ? SOCK_DGRAM : type == 5 ? SOCK_SEQPACKET : SOCK_STREAM,
				 &trapped, &nr) == 0 && !trapped)
			sb_add(&ok, "%s%s", ok.len ? "," : "", path);
	}
	if (ok.len)
		report("abstract-sockets", "ESCAPED", "listed=%d connected to %s", listed, ok.s);
	else
		report("abstract-sockets", "CONTAINED", "listed=%d tried=%d connected=0", listed, tried);
}

static void probe_connect_sockets(void)
{
	static const char *const defaults[] = {
		"/run/bulwark/bulwark.sock", "/var/run/docker.sock", "/run/systemd/private",
		"/dev/log", "/run/systemd/journal/socket", "/run/dbus/system_bus_socket",
	};
	size_t i;
	int k;

	for (k = 0; k < g_nsockets; k++)
		probe_connect(g_sockets[k]);
	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		probe_connect(defaults[i]);
	probe_abstract();
}

/* ------------------------------------------------------------------ */
/* 6. switch-sockets                                                   */
/* ------------------------------------------------------------------ */

static void make_frame(unsigned char f[60], const struct nic *n)
{
	static const unsigned char dflt[6] = { 0x02, 0x00, 0x00, 0x68, 0x6f, 0x73 };

	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, n && n->has_mac ? n->mac : dflt, 6);
	f[12] = 0x88; /* 0x88b5: IEEE local experimental ethertype */
	f[13] = 0xb5;
	memcpy(f + 14, "HOSTILE-PROBE", 13);
}

struct sockdir {
	char names[32][256];
	int n;
};

static int sock_cb(const char *name, unsigned char type, void *arg)
{
	struct sockdir *d = arg;
	size_t l = strlen(name);

	(void)type;
	if (l > 5 && strcmp(name + l - 5, ".sock") == 0 && l < sizeof(d->names[0]) && d->n < 32)
		fmt(d->names[d->n++], sizeof(d->names[0]), "%s", name);
	return d->n >= 32;
}

/* switch-send:<path>: sending a frame to our own switch port sockets is
 * allowed -> INFO with the result. switch-bind:<dir>: binding a new socket
 * in the (read-only) port directory must fail -> BLOCKED, success ->
 * ESCAPED (the socket file is unlinked at once). nic-send:<id>: one frame
 * through our own NIC descriptor -> INFO. */
static void probe_switch(void)
{
	static struct sockdir d;
	unsigned char frame[60];
	char name[MAX_NAME], path[PATH_MAX];
	struct try t;
	int i, r;

	make_frame(frame, g_nnics > 0 ? &g_nics[0] : NULL);
	for (i = 0; i < g_nnics; i++) {
		struct nic *n = &g_nics[i];

		fmt(name, sizeof(name), "nic-send:%s", n->id);
		make_frame(frame, n);
		if (n->fd >= 0) {
			TRY(t, send(n->fd, frame, sizeof(frame), MSG_DONTWAIT | MSG_NOSIGNAL));
			report(name, "INFO", "fd=%d send=%s", n->fd, t.trapped || t.ret < 0 ? try_str(&t) : "sent=60");
		} else if (n->remote[0]) {
			struct sockaddr_un sa = { .sun_family = AF_UNIX };
			int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

			fmt(sa.sun_path, sizeof(sa.sun_path), "%s", n->remote);
			if (fd < 0) {
				report(name, "INFO", "socket %s", errname(errno));
				continue;
			}
			TRY(t, sendto(fd, frame, sizeof(frame), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
				      sizeof(sa)));
			report(name, "INFO", "remote=%s sendto=%s", n->remote, try_str(&t));
			close(fd);
		} else {
			report(name, "INFO", "no descriptor or remote path");
		}
	}

	if (!g_switchdir[0]) {
		report("switch-sockets", "INFO", "no hostile.switchdir given");
		return;
	}
	d.n = 0;
	r = dir_walk(g_switchdir, sock_cb, &d);
	if (r < 0)
		report("switch-sockets", "INFO", "%s: %s", g_switchdir, errname(-r));
	else
		report("switch-sockets", "INFO", "%s: entries=%d sockets=%d", g_switchdir, r, d.n);
	for (i = 0; i < d.n; i++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd;

		fmt(path, sizeof(path), "%s/%s", g_switchdir, d.names[i]);
		fmt(name, sizeof(name), "switch-send:%s", path);
		if (strlen(path) >= sizeof(sa.sun_path)) {
			report(name, "INFO", "path too long");
			continue;
		}
		memcpy(sa.sun_path, path, strlen(path) + 1);
		TRY(t, socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
		if (t.trapped || t.ret < 0) {
			report(name, "INFO", "socket %s", try_str(&t));
			continue;
		}
		fd = (int)t.ret;
		TRY(t, sendto(fd, frame, sizeof(frame), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof(sa)));
		report(name, "INFO", "sendto=%s", t.trapped || t.ret < 0 ? try_str(&t) : "sent=60");
		close(fd);
	}

	/* bind a new socket in the port directory */
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd;

		fmt(path, sizeof(path), "%s/hostile-%d.sock", g_switchdir, (int)g_pid);
		fmt(name, sizeof(name), "switch-bind:%s", g_switchdir);
		if (strlen(path) >= sizeof(sa.sun_path)) {
			report(name, "INFO", "path too long");
			return;
		}
		memcpy(sa.sun_path, path, strlen(path) + 1);
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			report(name, "INFO", "socket %s", errname(errno));
			return;
		}
		TRY(t, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
		close(fd);
		if (!t.trapped && t.ret == 0)
			unlink(path);
		must_fail(name, &t, "bound a new socket in the switch port directory (removed)");
	}
}

/* ------------------------------------------------------------------ */
/* 7. ptrace                                                           */
/* ------------------------------------------------------------------ */

/* ptrace-attach-1: in the jail pid 1 is ourselves, so PTRACE_ATTACH(1) is
 *   harmless and tried for real (trap/EPERM -> BLOCKED). Outside a pid
 *   namespace pid 1 is the host's init, which must never be stopped: then
 *   only reachability is probed with PTRACE_ATTACH(pid 0) (ESRCH when
 *   reachable -> ESCAPED; trap/EPERM -> BLOCKED).
 * ptrace-traceme: TRACEME would make our parent (the daemon) our tracer and
 *   stop us at the next signal, so it is only called when ptrace was found
 *   blocked; if ptrace is reachable that alone is ESCAPED.
 * process-vm-readv-1: reading 16 bytes of pid 1. Our own pid 1 -> INFO;
 *   success or EFAULT on a foreign pid 1 (the permission check passed) ->
 *   ESCAPED; trap/EPERM/ESRCH -> BLOCKED. Read only: nothing is written. */
static void probe_ptrace(void)
{
	struct try t, reachable;
	char buf[4096], local[16];
	struct iovec lv = { local, sizeof(local) }, rv;
	unsigned long addr = (unsigned long)&g_self_exe_marker;
	long n;

	if (is_own(1)) {
		TRY(t, ptrace(PTRACE_ATTACH, 1, NULL, NULL));
		must_fail("ptrace-attach-1", &t, "attached to pid 1 (ourselves)");
	} else {
		TRY(t, ptrace(PTRACE_ATTACH, 0, NULL, NULL));
		reach("ptrace-attach-1", &t, "ptrace (pid 1 is not ours: probed with pid 0)");
	}

	TRY(reachable, ptrace(PTRACE_ATTACH, 0, NULL, NULL));
	if (reachable.trapped || (reachable.ret < 0 && deny_errno(reachable.err))) {
		TRY(t, ptrace(PTRACE_TRACEME, 0, NULL, NULL));
		must_fail("ptrace-traceme", &t, "PTRACE_TRACEME succeeded: the parent is now our tracer");
	} else {
		report("ptrace-traceme", "ESCAPED", "ptrace reachable (%s on pid 0); TRACEME not called",
		       try_str(&reachable));
	}

	/* a mapped address of pid 1, when its maps are readable */
	n = read_file("/proc/1/maps", buf, sizeof(buf));
	if (n > 0)
		addr = strtoul(buf, NULL, 16);
	rv.iov_base = (void *)addr;
	rv.iov_len = sizeof(local);
	TRY(t, process_vm_readv(1, &lv, 1, &rv, 1, 0));
	if (is_own(1))
		report("process-vm-readv-1", "INFO", "pid 1 is ourselves: %s", try_str(&t));
	else if (!t.trapped && (t.ret >= 0 || t.err == EFAULT))
		report("process-vm-readv-1", "ESCAPED", "read of pid 1 permitted: %s", try_str(&t));
	else
		report("process-vm-readv-1", "BLOCKED", "%s", try_str(&t));
}

/* ------------------------------------------------------------------ */
/* 9. mknod, mkfifo, creat                                             */
/* ------------------------------------------------------------------ */

/* Creating anything in the read-only root must fail (EROFS, EACCES, EPERM,
 * ENOENT or a trap -> BLOCKED); success -> ESCAPED and the node is unlinked
 * at once (only when we created it: O_EXCL/mknod never reuse a name). */
static void probe_create_in(const char *dir)
{
	char path[PATH_MAX], name[MAX_NAME];
	struct try t;

	fmt(path, sizeof(path), "%s/hostile-blk-%d", strcmp(dir, "/") ? dir : "", (int)g_pid);
	fmt(name, sizeof(name), "mknod-blk:%s", dir);
	TRY(t, mknod(path, S_IFBLK | 0600, makedev(8, 0)));
	if (!t.trapped && t.ret == 0)
		unlink(path);
	must_fail(name, &t, "created block device 8:0 (removed)");

	fmt(path, sizeof(path), "%s/hostile-mem-%d", strcmp(dir, "/") ? dir : "", (int)g_pid);
	fmt(name, sizeof(name), "mknod-chr:%s", dir);
	TRY(t, mknod(path, S_IFCHR | 0600, makedev(1, 1)));
	if (!t.trapped && t.ret == 0)
		unlink(path);
	must_fail(name, &t, "created char device 1:1 /dev/mem (removed)");

	fmt(path, sizeof(path), "%s/hostile-fifo-%d", strcmp(dir, "/") ? dir : "", (int)g_pid);
	fmt(name, sizeof(name), "mkfifo:%s", dir);
	TRY(t, mkfifo(path, 0600));
	if (!t.trapped && t.ret == 0)
		unlink(path);
	must_fail(name, &t, "created a FIFO (removed)");

	fmt(path, sizeof(path), "%s/hostile-file-%d", strcmp(dir, "/") ? dir : "", (int)g_pid);
	fmt(name, sizeof(name), "creat:%s", dir);
	TRY(t, open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
	if (!t.trapped && t.ret >= 0) {
		close((int)t.ret);
		unlink(path);
	}
	must_fail(name, &t, "created a regular file (removed)");
}

static void probe_mknod(void)
{
	char cwd[PATH_MAX];
	const char *dirs[4] = { "/tmp", "/", "/dev", NULL };
	int i;

	safe_getcwd(cwd, sizeof(cwd));
	if (cwd[0] == '/' && strcmp(cwd, "/") && strcmp(cwd, "/tmp") && strcmp(cwd, "/dev"))
		dirs[3] = cwd;
	for (i = 0; i < 4; i++)
		if (dirs[i])
			probe_create_in(dirs[i]);
}

/* ------------------------------------------------------------------ */
/* 10. mount, pivot_root, chroot                                       */
/* ------------------------------------------------------------------ */

/* mount-tmpfs / mount-proc: real mounts on /tmp (or / when there is no
 *   /tmp); success -> ESCAPED and umount2(MNT_DETACH) at once.
 * mount-probe: mount with an unknown file system type on /: EPERM/trap ->
 *   BLOCKED, ENODEV -> ESCAPED (the capability check passed).
 * umount-root: umount2("/", MNT_EXPIRE|MNT_DETACH) is invalid after the
 *   capability check: EPERM/trap -> BLOCKED, EINVAL -> ESCAPED. Never a
 *   real detach of /.
 * pivot-root: pivot_root of two missing paths: EPERM/trap -> BLOCKED,
 *   ENOENT -> ESCAPED (may_mount passed).
 * chroot-escape: chroot into an existing subdirectory, chdir("..") 64
 *   times, chroot("."), open /etc/shadow. chroot permitted at all ->
 *   ESCAPED (detail: whether /etc/shadow opened). Root and cwd are restored
 *   from descriptors saved before. */
static void probe_mount(void)
{
	struct stat st;
	const char *target = (safe_stat("/tmp", &st) == 0 && S_ISDIR(st.st_mode)) ? "/tmp" : "/";
	char name[MAX_NAME];
	struct try t;
	int rootfd, cwdfd, i;

	fmt(name, sizeof(name), "mount-tmpfs:%s", target);
	TRY(t, mount("hostile", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k"));
	if (!t.trapped && t.ret == 0)
		umount2(target, MNT_DETACH);
	must_fail(name, &t, "mounted tmpfs (unmounted again)");

	fmt(name, sizeof(name), "mount-proc:%s", target);
	TRY(t, mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
	if (!t.trapped && t.ret == 0)
		umount2(target, MNT_DETACH);
	must_fail(name, &t, "mounted a new proc (unmounted again)");

	TRY(t, mount(NULL, "/", "hostile-no-such-fs", 0, NULL));
	if (!t.trapped && t.ret == 0) /* cannot happen; be safe anyway */
		umount2("/", MNT_DETACH);
	reach("mount-probe", &t, "mount");

	TRY(t, umount2("/", MNT_EXPIRE | MNT_DETACH));
	reach("umount-root", &t, "umount2");

	TRY(t, syscall(SYS_pivot_root, "/hostile-no-such-new-root", "/hostile-no-such-old-root"));
	reach("pivot-root", &t, "pivot_root");

	rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	cwdfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 || cwdfd < 0) {
		/* Without a way back we must not chroot. */
		report("chroot-escape", "INFO", "not tried: cannot save root/cwd (%s)", errname(errno));
	} else {
		const char *sub = (safe_stat("/dev", &st) == 0 && S_ISDIR(st.st_mode)) ? "/dev" : "/proc";

		TRY(t, chroot(sub));
		if (t.trapped || t.ret < 0) {
			report("chroot-escape", "BLOCKED", "chroot(%s): %s", sub, try_str(&t));
		} else {
			struct try o;
			int restored;

			for (i = 0; i < 64; i++)
				if (chdir("..") < 0)
					break;
			ignore_result(chroot("."));
			TRY(o, open("/etc/shadow", O_RDONLY | O_CLOEXEC | O_NONBLOCK));
			if (!o.trapped && o.ret >= 0)
				close((int)o.ret);
			restored = fchdir(rootfd) == 0 && chroot(".") == 0 && fchdir(cwdfd) == 0;
			report("chroot-escape", "ESCAPED", "chroot permitted; after chdir(..)x64 /etc/shadow: %s%s",
			       try_str(&o), restored ? "" : " (restore failed)");
		}
	}
	if (rootfd >= 0)
		close(rootfd);
	if (cwdfd >= 0)
		close(cwdfd);
}

/* ------------------------------------------------------------------ */
/* 11. unshare, setns (run last: success changes our namespaces)       */
/* ------------------------------------------------------------------ */

/* setns-net: setns to /proc/1/ns/net; success -> ESCAPED.
 * unshare-mount / unshare-user (in this order, user last: a new user
 * namespace would change what the other two can do): success -> ESCAPED;
 * ENOSPC (user namespaces disabled), EPERM, EINVAL, trap -> BLOCKED: the
 * call did not take effect. */
static void probe_unshare(void)
{
	struct try t;
	int fd;

	TRY(t, open("/proc/1/ns/net", O_RDONLY | O_CLOEXEC));
	if (t.trapped || t.ret < 0) {
		report("setns-net", "BLOCKED", "open /proc/1/ns/net: %s", try_str(&t));
	} else {
		fd = (int)t.ret;
		TRY(t, setns(fd, CLONE_NEWNET));
		close(fd);
		must_fail("setns-net", &t, "joined the network namespace of pid 1");
	}

	TRY(t, unshare(CLONE_NEWNS));
	must_fail("unshare-mount", &t, "created a mount namespace");
	TRY(t, unshare(CLONE_NEWUSER));
	must_fail("unshare-user", &t, "created a user namespace");
}

/* ------------------------------------------------------------------ */
/* 12. setuid, capabilities                                            */
/* ------------------------------------------------------------------ */

static int status_field(const char *status, const char *key, char *out, size_t size)
{
	const char *p = status;
	size_t kl = strlen(key);
	int k;

	for (k = 0; k < 512 && p && *p; k++) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
			const char *v = p + kl + 1;
			size_t n;

			while (*v == ' ' || *v == '\t')
				v++;
			n = strcspn(v, "\n");
			if (n >= size)
				n = size - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			for (size_t i = 0; i < n; i++)
				if (out[i] == '\t')
					out[i] = ' ';
			return 1;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

/* Raw syscalls so only this (the only) thread is affected and glibc's
 * setxid broadcast is not involved. Any success -> ESCAPED (already being
 * uid 0 makes setuid(0) succeed: that is an escape of the unprivileged-uid
 * rule). cap-eff: CapEff non-zero -> ESCAPED. no-new-privs: 0 -> ESCAPED.
 * seccomp-mode: not 2 (filter) -> ESCAPED. */
static void probe_setuid(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	char status[8192], v[128];
	struct sbuf b;
	struct try t;
	long n;

	TRY(t, syscall(SYS_setuid, 0));
	must_fail("setuid-0", &t, "setuid(0) succeeded");
	TRY(t, syscall(SYS_setresuid, 0, 0, 0));
	must_fail("setresuid-0", &t, "setresuid(0,0,0) succeeded");
	TRY(t, syscall(SYS_setgid, 0));
	must_fail("setgid-0", &t, "setgid(0) succeeded");
	TRY(t, syscall(SYS_setgroups, 0, NULL));
	must_fail("setgroups-0", &t, "setgroups(0) succeeded");
	memset(data, 0xff, sizeof(data));
	TRY(t, syscall(SYS_capset, &hdr, data));
	must_fail("capset-full", &t, "capset to all capabilities succeeded");

	n = read_file("/proc/self/status", status, sizeof(status));
	if (n < 0) {
		report("proc-status", "INFO", "/proc/self/status: %s", errname((int)-n));
		return;
	}
	sb_init(&b);
	{
		static const char *const keys[] = { "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
						    "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters" };
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (status_field(status, keys[i], v, sizeof(v)))
				sb_add(&b, "%s%s=%s", b.len ? " " : "", keys[i], v);
	}
	report("proc-status", "INFO", "%s", b.s);
	if (status_field(status, "CapEff", v, sizeof(v)))
		report("cap-eff", strspn(v, "0") == strlen(v) ? "INFO" : "ESCAPED", "CapEff=%s", v);
	else
		report("cap-eff", "INFO", "CapEff not found");
	if (status_field(status, "NoNewPrivs", v, sizeof(v)))
		report("no-new-privs", strcmp(v, "1") == 0 ? "CONTAINED" : "ESCAPED", "NoNewPrivs=%s", v);
	if (status_field(status, "Seccomp", v, sizeof(v)))
		report("seccomp-mode", strcmp(v, "2") == 0 ? "CONTAINED" : "ESCAPED", "Seccomp=%s", v);
}

/* rlimit-raise: raising a hard limit above its value needs
 * CAP_SYS_RESOURCE; success -> ESCAPED (and restored). */
static void probe_rlimit_raise(void)
{
	static const struct { int res; const char *name; } lims[] = {
		{ RLIMIT_NOFILE, "rlimit-raise:NOFILE" }, { RLIMIT_CORE, "rlimit-raise:CORE" },
		{ RLIMIT_NPROC, "rlimit-raise:NPROC" }, { RLIMIT_FSIZE, "rlimit-raise:FSIZE" },
	};
	size_t i;

	for (i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		struct rlimit old, raised;
		struct try t;

		if (get_rlimit(lims[i].res, &old) < 0) {
			report(lims[i].name, "INFO", "getrlimit %s", errname(errno));
			continue;
		}
		if (old.rlim_max == RLIM_INFINITY) {
			report(lims[i].name, lims[i].res == RLIMIT_CORE ? "ESCAPED" : "INFO", "hard limit unlimited");
			continue;
		}
		raised = old;
		raised.rlim_max = old.rlim_max + (lims[i].res == RLIMIT_NOFILE ? 1 : 1048576);
		TRY(t, setrlimit(lims[i].res, &raised));
		if (!t.trapped && t.ret == 0)
			ignore_result(setrlimit(lims[i].res, &old));
		must_fail(lims[i].name, &t, "raised the hard limit (restored)");
	}
}

/* ------------------------------------------------------------------ */
/* 13. bpf                                                             */
/* ------------------------------------------------------------------ */

/* Loading "r0 = 0; exit" as a socket filter, creating a 1-entry array
 * map: success -> ESCAPED (the descriptor is closed). */
static void probe_bpf(void)
{
	struct bpf_insn insns[2];
	union bpf_attr attr;
	struct try t;

	memset(insns, 0, sizeof(insns));
	insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K; /* r0 = 0 */
	insns[1].code = BPF_JMP | BPF_EXIT;
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = 2;
	attr.license = (uint64_t)(uintptr_t)"GPL";
	TRY(t, syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr)));
	if (!t.trapped && t.ret >= 0)
		close((int)t.ret);
	must_fail("bpf-prog-load", &t, "loaded a socket filter program");

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	TRY(t, syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
	if (!t.trapped && t.ret >= 0)
		close((int)t.ret);
	must_fail("bpf-map-create", &t, "created an array map");
}

/* ------------------------------------------------------------------ */
/* 14. raw and non-Unix sockets                                        */
/* ------------------------------------------------------------------ */

/* The policy is AF_UNIX only: creating any other socket -> ESCAPED (the
 * detail says what a connect did; the network namespace may still contain
 * it). Trap / EAFNOSUPPORT / EPERM / EACCES -> BLOCKED. Connects are
 * non-blocking with a 1 s timeout; nothing is sent. */
static void probe_socket(const char *name, int dom, int type, int proto, const struct sockaddr *sa,
			 socklen_t salen)
{
	struct try t;
	int fd;
	const char *cres = "not tried";
	char cbuf[48];

	TRY(t, socket(dom, type | SOCK_CLOEXEC | SOCK_NONBLOCK, proto));
	if (t.trapped || t.ret < 0) {
		report(name, "BLOCKED", "%s", try_str(&t));
		return;
	}
	fd = (int)t.ret;
	if (sa) {
		struct try c;

		TRY(c, connect(fd, sa, salen));
		if (!c.trapped && c.ret < 0 && c.err == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (sys_poll(&p, 1, 1000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
				fmt(cbuf, sizeof(cbuf), "%s", soerr ? errname(soerr) : "connected");
			else
				fmt(cbuf, sizeof(cbuf), "timeout");
		} else {
			fmt(cbuf, sizeof(cbuf), "%s", c.ret == 0 && !c.trapped ? "connected" : try_str(&c));
		}
		cres = cbuf;
	}
	close(fd);
	report(name, "ESCAPED", "socket created; connect=%s", cres);
}

static void probe_raw_sockets(void)
{
	struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons(22) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(22) };

	in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in6.sin6_addr = in6addr_loopback;
	probe_socket("socket-packet", AF_PACKET, SOCK_RAW, htons(ETH_P_ALL), NULL, 0);
	probe_socket("socket-inet-raw", AF_INET, SOCK_RAW, IPPROTO_ICMP, NULL, 0);
	probe_socket("tcp-connect-127.0.0.1:22", AF_INET, SOCK_STREAM, 0, (struct sockaddr *)&in4, sizeof(in4));
	probe_socket("tcp6-connect-[::1]:22", AF_INET6, SOCK_STREAM, 0, (struct sockaddr *)&in6, sizeof(in6));
	probe_socket("socket-inet-udp", AF_INET, SOCK_DGRAM, 0, NULL, 0);
	probe_socket("socket-netlink-route", AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, NULL, 0);
	/* vsock: creation only; never connect to the host (CID 2). */
	probe_socket("socket-vsock", AF_VSOCK, SOCK_STREAM, 0, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* 15. io_uring                                                        */
/* ------------------------------------------------------------------ */

/* io_uring_setup(1, zeroed params): success -> ESCAPED (closed);
 * trap/EPERM/ENOSYS (or io_uring_disabled) -> BLOCKED. */
static void probe_io_uring(void)
{
	unsigned char params[256]; /* struct io_uring_params is 120 bytes */
	struct try t;

	memset(params, 0, sizeof(params));
	TRY(t, syscall(SYS_io_uring_setup, 1, params));
	if (!t.trapped && t.ret >= 0)
		close((int)t.ret);
	must_fail("io-uring-setup", &t, "created an io_uring instance");
}

/* ------------------------------------------------------------------ */
/* 16/17. exec and fork                                                */
/* ------------------------------------------------------------------ */

/* wait_child: waits at most timeout_ms; returns the wait status or -1
 * (the child is then killed: it is ours). */
static int wait_child(pid_t pid, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	int status, i;

	for (i = 0; i < 10000; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ms() > deadline)
			break;
		msleep(10);
	}
	kill(pid, SIGKILL);
	ignore_result(waitpid(pid, &status, 0));
	return -1;
}

/* fork_exec runs path in a forked child. Returns the wait status, -1 on
 * timeout, or -2 with *ft holding why fork failed. */
static int fork_exec(const char *path, char *const argv[], struct try *ft)
{
	static char *const envp[] = { NULL };
	pid_t pid;

	g_sigsys_count = 0;
	errno = 0;
	pid = fork();
	if (pid == 0 && !g_sigsys_count) {
		execve(path, argv, envp);
		_exit(127);
	}
	ft->ret = pid;
	ft->err = errno;
	ft->trapped = g_sigsys_count != 0;
	ft->nr = (int)g_sigsys_nr;
	if (ft->trapped || pid < 0)
		return -2;
	return wait_child(pid, 5000);
}

/* exec-sh: /bin/sh missing -> the in-process execve fails (BLOCKED with
 *   errno or trap). Present: run "sh -c 'exit 0'" in a forked child; exit
 *   0 -> ESCAPED; fork blocked -> INFO (present, not run: an in-process
 *   exec would replace the VMM).
 * exec-self: re-executing our own binary is not an escape (QEMU's own
 *   -sandbox spawn=deny covers it): INFO either way. With fork: the child
 *   execs /proc/self/exe "exit-now". Without: execve with a 256 KiB argument
 *   (over MAX_ARG_STRLEN) fails with E2BIG before the point of no return,
 *   which shows whether execve is reachable. */
static void probe_exec(void)
{
	static char *const sh_argv[] = { "sh", "-c", "exit 0", NULL };
	static char *const self_argv[] = { "hostile", "exit-now", NULL };
	static char *const envp[] = { NULL };
	struct stat st;
	struct try t, ft;
	int status;

	if (safe_stat("/bin/sh", &st) != 0 && errno == ENOSYS) {
		/* Not knowing whether it exists, never exec it in-process. */
		report("exec-sh", "INFO", "stat(/bin/sh) trapped; not tried");
	} else if (st.st_mode == 0) {
		/* Absent: the in-process execve can only fail. */
		TRY(t, execve("/bin/sh", sh_argv, envp));
		report("exec-sh", "BLOCKED", "/bin/sh: %s", try_str(&t));
	} else {
		status = fork_exec("/bin/sh", sh_argv, &ft);
		if (status == -2)
			report("exec-sh", "INFO", "/bin/sh present (mode %o), not run: fork %s", (unsigned)st.st_mode,
			       try_str(&ft));
		else if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			report("exec-sh", "ESCAPED", "/bin/sh ran in a child (exit 0)");
		else
			report("exec-sh", "BLOCKED", "/bin/sh present but did not run (status %d)", status);
	}

	status = fork_exec("/proc/self/exe", self_argv, &ft);
	if (status != -2) {
		report("exec-self", "INFO", "re-exec of /proc/self/exe in a child: %s",
		       status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ran" : "failed");
	} else {
		size_t big = 256 * 1024;
		char *arg = malloc(big + 1);

		if (!arg) {
			report("exec-self", "INFO", "not tried: out of memory");
			return;
		}
		memcpy(arg, "exit-now", 8); /* should it ever run, it exits */
		memset(arg + 8, 'A', big - 8);
		arg[big] = '\0';
		{
			char *argv[] = { "hostile", arg, NULL };

			TRY(t, execve("/proc/self/exe", argv, envp));
		}
		free(arg);
		if (t.trapped)
			report("exec-self", "BLOCKED", "%s", try_str(&t));
		else
			report("exec-self", "INFO", "execve %s (oversized argument; not run in-process: fork %s)",
			       t.err == E2BIG ? "reachable: E2BIG" : errname(t.err), try_str(&ft));
	}
}

static pid_t do_vfork(void)
{
	pid_t p = vfork();

	if (p == 0)
		_exit(0);
	return p;
}

/* fork / vfork: the child _exits at once. Trap -> BLOCKED; EAGAIN
 * (RLIMIT_NPROC, pids.max) -> CONTAINED; success -> ESCAPED.
 * clone3(NULL, 0) fails with EINVAL once reachable; seccomp cannot filter
 * its flags, so it must answer ENOSYS: trap/ENOSYS/EPERM -> BLOCKED,
 * EINVAL -> ESCAPED. */
static void probe_fork(void)
{
	struct try t;
	pid_t p;

	g_sigsys_count = 0;
	errno = 0;
	p = fork();
	if (p == 0 && !g_sigsys_count)
		_exit(0);
	t.ret = p;
	t.err = errno;
	t.trapped = g_sigsys_count != 0;
	t.nr = (int)g_sigsys_nr;
	if (t.trapped)
		report("fork", "BLOCKED", "%s", try_str(&t));
	else if (p < 0)
		report("fork", t.err == EAGAIN ? "CONTAINED" : "BLOCKED", "%s", errname(t.err));
	else
		report("fork", "ESCAPED", "child %d (status %d)", (int)p, wait_child(p, 5000));

	g_sigsys_count = 0;
	errno = 0;
	p = do_vfork();
	t.ret = p;
	t.err = errno;
	t.trapped = g_sigsys_count != 0;
	t.nr = (int)g_sigsys_nr;
	if (t.trapped)
		report("vfork", "BLOCKED", "%s", try_str(&t));
	else if (p < 0)
		report("vfork", t.err == EAGAIN ? "CONTAINED" : "BLOCKED", "%s", errname(t.err));
	else
		report("vfork", "ESCAPED", "child %d (status %d)", (int)p, wait_child(p, 5000));

	TRY(t, syscall(SYS_clone3, NULL, 0));
	reach("clone3", &t, "clone3");
}

/* ------------------------------------------------------------------ */
/* 18. kernel interfaces                                               */
/* ------------------------------------------------------------------ */

/* dev:<path>, kernel:<path>: opening -> ESCAPED (closed at once, nothing
 * read or written), except /dev/kvm which is INFO (present only under
 * KVM). kernel-write:<path> is opened O_WRONLY and closed unwritten. */
static void probe_dev(const char *prefix, const char *path, int flags, int info_only)
{
	char name[MAX_NAME];
	struct try t;

	fmt(name, sizeof(name), "%s:%s", prefix, path);
	TRY(t, open(path, flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
	if (!t.trapped && t.ret >= 0)
		close((int)t.ret);
	if (info_only)
		report(name, "INFO", "%s", t.trapped || t.ret < 0 ? try_str(&t) : "present, opened");
	else
		must_fail(name, &t, "opened");
}

/* Each call below either has harmless arguments or arguments that make it
 * fail right after the permission check:
 *   keyctl(GET_KEYRING_ID, session, create=0): reachable -> ESCAPED.
 *   perf_event_open(task-clock on ourselves): success -> ESCAPED.
 *   userfaultfd: success -> ESCAPED.
 *   init_module(NULL, 0): ENOEXEC after CAP_SYS_MODULE -> ESCAPED.
 *   finit_module(-1): EBADF after CAP_SYS_MODULE -> ESCAPED.
 *   kexec_load(17 segments, unknown flags/arch): EINVAL after
 *     CAP_SYS_BOOT -> ESCAPED. (flags 0 would unload a crash kernel.)
 *   reboot(magic1 = 0): EINVAL after CAP_SYS_BOOT -> ESCAPED; never a
 *     valid magic, so it cannot reboot.
 *   ioperm(0x80): success -> ESCAPED (revoked at once).
 *   swapoff(missing path): ENOENT after CAP_SYS_ADMIN -> ESCAPED.
 *   syslog(SIZE_BUFFER): success -> ESCAPED (kernel log access).
 *   open-by-handle: open_by_handle_at with a made-up handle (inode 2):
 *     success -> ESCAPED, EPERM/trap -> BLOCKED; other errors -> INFO (the
 *     call ran but opened nothing; newer kernels allow it for own mounts).
 * EPERM, EACCES, ENOSYS or a trap -> BLOCKED everywhere. */
static void probe_kernel(void)
{
	struct perf_event_attr pa;
	struct try t;
	int mfd;

	probe_dev("dev", "/dev/mem", O_RDONLY, 0);
	probe_dev("dev", "/dev/kmem", O_RDONLY, 0);
	probe_dev("dev", "/dev/port", O_RDONLY, 0);
	probe_dev("dev", "/dev/kvm", O_RDWR, 1);
	probe_dev("dev", "/dev/net/tun", O_RDWR, 0);
	probe_dev("dev", "/dev/vhost-net", O_RDWR, 0);
	probe_dev("dev", "/dev/fuse", O_RDWR, 0);
	probe_dev("dev", "/dev/loop-control", O_RDONLY, 0);
	probe_dev("kernel", "/sys/kernel", O_RDONLY | O_DIRECTORY, 0);
	probe_dev("kernel", "/proc/kcore", O_RDONLY, 0);
	probe_dev("kernel-write", "/proc/sysrq-trigger", O_WRONLY, 0);
	probe_dev("kernel-write", "/proc/sys/kernel/core_pattern", O_WRONLY, 0);

	TRY(t, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
	reach("keyctl", &t, "keyctl");

	memset(&pa, 0, sizeof(pa));
	pa.type = PERF_TYPE_SOFTWARE;
	pa.size = sizeof(pa);
	pa.config = PERF_COUNT_SW_TASK_CLOCK;
	pa.disabled = 1;
	pa.exclude_kernel = 1;
	pa.exclude_hv = 1;
	TRY(t, syscall(SYS_perf_event_open, &pa, 0, -1, -1, PERF_FLAG_FD_CLOEXEC));
	if (!t.trapped && t.ret >= 0)
		close((int)t.ret);
	must_fail("perf-event-open", &t, "opened a perf event on ourselves");

	TRY(t, syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
	if (!t.trapped && t.ret >= 0)
		close((int)t.ret);
	must_fail("userfaultfd", &t, "created a userfaultfd");

	TRY(t, syscall(SYS_init_module, NULL, 0UL, ""));
	reach("init-module", &t, "init_module");
	TRY(t, syscall(SYS_finit_module, -1, "", 0));
	reach("finit-module", &t, "finit_module");
	TRY(t, syscall(SYS_kexec_load, 0UL, 17UL, NULL, (0x7fffUL << 16) | 0x100UL));
	reach("kexec-load", &t, "kexec_load");
	TRY(t, syscall(SYS_reboot, 0 /* invalid magic1 */, 0, LINUX_REBOOT_CMD_RESTART, NULL));
	reach("reboot", &t, "reboot");
#ifdef SYS_ioperm
	TRY(t, syscall(SYS_ioperm, 0x80UL, 1UL, 1));
	if (!t.trapped && t.ret == 0)
		ignore_result(syscall(SYS_ioperm, 0x80UL, 1UL, 0));
	must_fail("ioperm", &t, "got I/O port 0x80 (revoked)");
#endif
	TRY(t, syscall(SYS_swapoff, "/hostile-no-such-swap"));
	reach("swapoff", &t, "swapoff");
	TRY(t, syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0));
	must_fail("syslog", &t, "kernel log readable");

	mfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0) {
		report("open-by-handle", "INFO", "open /: %s", errname(errno));
	} else {
		struct {
			struct file_handle fh;
			uint32_t ino, gen;
		} h;

		h.fh.handle_bytes = 8;
		h.fh.handle_type = 1; /* FILEID_INO32_GEN */
		h.ino = 2;
		h.gen = 0;
		TRY(t, open_by_handle_at(mfd, &h.fh, O_RDONLY | O_CLOEXEC));
		if (!t.trapped && t.ret >= 0) {
			close((int)t.ret);
			report("open-by-handle", "ESCAPED", "opened inode 2 by handle");
		} else if (t.trapped || deny_errno(t.err)) {
			report("open-by-handle", "BLOCKED", "%s", try_str(&t));
		} else {
			report("open-by-handle", "INFO", "ran, opened nothing: %s", try_str(&t));
		}
		close(mfd);
	}
}

/* ------------------------------------------------------------------ */
/* 19. fsize                                                           */
/* ------------------------------------------------------------------ */

/* Write 8192 bytes to stdout (the VMM's log file) starting 4096 bytes
 * below RLIMIT_FSIZE: a short write then EFBIG (SIGXFSZ is ignored) ->
 * CONTAINED; everything written -> ESCAPED; no limit -> ESCAPED without
 * writing. The file's size, offset and O_APPEND are restored afterwards. */
static void probe_fsize(void)
{
	struct stat st;
	struct rlimit rl;
	char buf[8192];
	off_t orig_off, at;
	ssize_t w1, w2 = 0;
	int e1 = 0, e2 = 0, fl, restored;

	if (safe_fstat(1, &st) < 0 || !S_ISREG(st.st_mode)) {
		report("fsize", "INFO", "stdout is not a regular file; skipped");
		return;
	}
	if (get_rlimit(RLIMIT_FSIZE, &rl) < 0) {
		report("fsize", "INFO", "getrlimit: %s", errname(errno));
		return;
	}
	if (rl.rlim_cur == RLIM_INFINITY) {
		report("fsize", "ESCAPED", "RLIMIT_FSIZE unlimited (nothing written)");
		return;
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (i % 64 == 63) ? '\n' : 'F';
	fl = fcntl(1, F_GETFL);
	if (fl >= 0 && (fl & O_APPEND))
		ignore_result(fcntl(1, F_SETFL, fl & ~O_APPEND));
	orig_off = lseek(1, 0, SEEK_CUR);
	at = rl.rlim_cur > 4096 ? (off_t)(rl.rlim_cur - 4096) : 0;
	if (lseek(1, at, SEEK_SET) != at) {
		report("fsize", "INFO", "lseek: %s", errname(errno));
		if (fl >= 0)
			ignore_result(fcntl(1, F_SETFL, fl));
		return;
	}
	w1 = write(1, buf, sizeof(buf));
	if (w1 < 0)
		e1 = errno;
	if (w1 >= 0 && (size_t)w1 < sizeof(buf)) {
		w2 = write(1, buf + w1, sizeof(buf) - (size_t)w1);
		if (w2 < 0)
			e2 = errno;
	}
	restored = ftruncate(1, st.st_size) == 0;
	if (orig_off >= 0)
		ignore_result(lseek(1, orig_off, SEEK_SET));
	if (fl >= 0)
		ignore_result(fcntl(1, F_SETFL, fl));
	if (w1 == (ssize_t)sizeof(buf) || (w1 >= 0 && w2 >= 0 && (size_t)(w1 + w2) == sizeof(buf)))
		report("fsize", "ESCAPED", "limit=%llu wrote 8192 bytes at %lld%s", (unsigned long long)rl.rlim_cur,
		       (long long)at, restored ? "" : " (size not restored)");
	else if (e1 == EFBIG || e2 == EFBIG)
		report("fsize", "CONTAINED", "limit=%llu wrote=%zd then EFBIG%s", (unsigned long long)rl.rlim_cur,
		       w1 > 0 ? w1 : 0, restored ? "" : " (size not restored)");
	else
		report("fsize", "INFO", "limit=%llu write=%zd %s/%s", (unsigned long long)rl.rlim_cur, w1,
		       errname(e1), errname(e2));
}

/* ------------------------------------------------------------------ */
/* 20. nofile                                                          */
/* ------------------------------------------------------------------ */

/* Open /dev/null until EMFILE (at most limit+16, at most 131072 opens):
 * EMFILE/ENFILE -> CONTAINED with the count; no failure -> ESCAPED.
 * Everything is closed again. No QMP service happens meanwhile. */
static void probe_nofile(void)
{
	struct rlimit rl;
	size_t bound = 131072, n = 0, i;
	int *fds, err = 0, trapped = 0;

	if (get_rlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur + 16 < bound)
		bound = (size_t)rl.rlim_cur + 16;
	fds = calloc(bound, sizeof(int));
	if (!fds) {
		report("nofile", "INFO", "calloc failed");
		return;
	}
	for (i = 0; i < bound; i++) {
		int fd;

		g_sigsys_count = 0;
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (g_sigsys_count) {
			trapped = 1;
			break;
		}
		if (fd < 0) {
			err = errno;
			break;
		}
		fds[n++] = fd;
	}
	for (i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	if (trapped)
		report("nofile", "INFO", "open trapped after %zu", n);
	else if (err == EMFILE || err == ENFILE)
		report("nofile", "CONTAINED", "opened=%zu err=%s limit=%llu", n, errname(err),
		       (unsigned long long)rl.rlim_cur);
	else if (err)
		report("nofile", "INFO", "opened=%zu err=%s", n, errname(err));
	else
		report("nofile", "ESCAPED", "opened=%zu without EMFILE", n);
}

/* ------------------------------------------------------------------ */
/* 21. ram-fd                                                          */
/* ------------------------------------------------------------------ */

/* ram-fd: INFO on the guest RAM file (ours). ram-fd-grow: ftruncate to
 * size + 2 MiB; EPERM (F_SEAL_GROW), EFBIG (RLIMIT_FSIZE below the new
 * size) or trap -> BLOCKED; success -> ESCAPED and shrunk back. */
static void probe_ram_fd(void)
{
	struct stat st;
	struct try t;
	char sealstr[64];
	int fd = g_ram_fd, opened = 0, seals;

	if (fd < 0 && g_ram_path[0]) {
		fd = open(g_ram_path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			report("ram-fd", "INFO", "%s: %s", g_ram_path, errname(errno));
			return;
		}
		opened = 1;
	}
	if (fd < 0) {
		report("ram-fd", "INFO", "no memory-backend-file given");
		return;
	}
	if (safe_fstat(fd, &st) < 0) {
		report("ram-fd", "INFO", "fd %d: fstat %s", fd, errname(errno));
		if (opened)
			close(fd);
		return;
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0) {
		fmt(sealstr, sizeof(sealstr), "%s", errname(errno));
	} else if (seals == 0) {
		fmt(sealstr, sizeof(sealstr), "none");
	} else {
		fmt(sealstr, sizeof(sealstr), "%s%s%s%s", (seals & F_SEAL_SEAL) ? ",seal" : "",
		    (seals & F_SEAL_SHRINK) ? ",shrink" : "", (seals & F_SEAL_GROW) ? ",grow" : "",
		    (seals & F_SEAL_WRITE) ? ",write" : "");
		memmove(sealstr, sealstr + 1, strlen(sealstr)); /* drop the first comma */
	}
	report("ram-fd", "INFO", "fd=%d size=%lld mode=%o seals=%s", fd, (long long)st.st_size,
	       (unsigned)st.st_mode, sealstr[0] ? sealstr : "other");
	TRY(t, ftruncate(fd, st.st_size + (2 << 20)));
	if (!t.trapped && t.ret == 0)
		ignore_result(ftruncate(fd, st.st_size));
	must_fail("ram-fd-grow", &t, "grew the guest RAM file by 2 MiB (shrunk back)");
	if (opened)
		close(fd);
}

/* ------------------------------------------------------------------ */
/* 22. symlink-plant, mkfifo-plant                                     */
/* ------------------------------------------------------------------ */

static void plant_symlink(const char *path)
{
	char name[MAX_NAME];
	struct try t;

	fmt(name, sizeof(name), "symlink:%s", path);
	TRY(t, symlink("/etc/shadow", path));
	if (!t.trapped && t.ret == 0)
		unlink(path);
	must_fail(name, &t, "planted a symlink to /etc/shadow (removed)");
}

struct dirq {
	char (*dirs)[PATH_MAX];
	int n, cap;
	int depth_end[4];
};

static void dirq_add(struct dirq *q, const char *d)
{
	int i;

	if (q->n >= q->cap)
		return;
	for (i = 0; i < q->n; i++)
		if (strcmp(q->dirs[i], d) == 0)
			return;
	fmt(q->dirs[q->n++], PATH_MAX, "%s", d);
}

struct subdir_arg {
	struct dirq *q;
	const char *parent;
};

static int subdir_cb(const char *name, unsigned char type, void *arg)
{
	struct subdir_arg *a = arg;
	char path[PATH_MAX];

	if (type != DT_DIR)
		return 0;
	fmt(path, sizeof(path), "%s/%s", strcmp(a->parent, "/") ? a->parent : "", name);
	if (strcmp(path, "/proc") == 0 || strcmp(path, "/sys") == 0) {
		dirq_add(a->q, path); /* try it, never descend */
		return a->q->n >= a->q->cap;
	}
	dirq_add(a->q, path);
	return a->q->n >= a->q->cap;
}

/* symlink:<path>: symlink("/etc/shadow", path) at qmp.sock in our cwd, at
 *   each hostile.paths entry and next to it; success -> ESCAPED (removed);
 *   EEXIST/EROFS/ENOENT/EACCES/trap -> BLOCKED.
 * mkfifo-plant: mkfifo in every directory we can see (breadth first from /,
 *   two levels, /proc and /sys not descended, at most 128, plus the switch
 *   directory and the parents of hostile.paths): one ESCAPED line per
 *   directory where it worked (FIFO removed), one summary line. */
static void probe_plant(void)
{
	char path[PATH_MAX], name[MAX_NAME];
	struct dirq q;
	int i, k, created = 0, erofs = 0, eacces = 0, enoent = 0, other = 0, trapped = 0;

	plant_symlink("qmp.sock");
	for (k = 0; k < g_npaths; k++) {
		char dir[PATH_MAX], *slash;

		plant_symlink(g_paths[k]);
		fmt(dir, sizeof(dir), "%s", g_paths[k]);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			fmt(path, sizeof(path), "%s/hostile-plant-%d", dir, (int)g_pid);
			plant_symlink(path);
		}
	}

	q.cap = 128;
	q.n = 0;
	q.dirs = calloc((size_t)q.cap, PATH_MAX);
	if (!q.dirs) {
		report("mkfifo-plant", "INFO", "calloc failed");
		return;
	}
	dirq_add(&q, "/");
	for (int level = 0, start = 0; level < 2; level++) {
		int end = q.n;

		for (i = start; i < end && q.n < q.cap; i++) {
			struct subdir_arg a = { &q, q.dirs[i] };

			if (strcmp(q.dirs[i], "/proc") == 0 || strcmp(q.dirs[i], "/sys") == 0)
				continue;
			ignore_result(dir_walk(q.dirs[i], subdir_cb, &a));
		}
		start = end;
	}
	if (g_switchdir[0])
		dirq_add(&q, g_switchdir);
	for (k = 0; k < g_npaths; k++) {
		char dir[PATH_MAX], *slash;

		fmt(dir, sizeof(dir), "%s", g_paths[k]);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			dirq_add(&q, dir);
		}
	}
	for (i = 0; i < q.n; i++) {
		struct try t;

		fmt(path, sizeof(path), "%s/hostile-fifo-%d", strcmp(q.dirs[i], "/") ? q.dirs[i] : "", (int)g_pid);
		TRY(t, mkfifo(path, 0600));
		if (t.trapped) {
			trapped++;
		} else if (t.ret == 0) {
			unlink(path);
			created++;
			fmt(name, sizeof(name), "mkfifo-plant:%s", q.dirs[i]);
			report(name, "ESCAPED", "created a FIFO (removed)");
		} else if (t.err == EROFS) {
			erofs++;
		} else if (t.err == EACCES || t.err == EPERM) {
			eacces++;
		} else if (t.err == ENOENT) {
			enoent++;
		} else {
			other++;
		}
	}
	report("mkfifo-plant", created ? "ESCAPED" : "BLOCKED",
	       "dirs=%d created=%d erofs=%d eacces=%d enoent=%d seccomp=%d other=%d", q.n, created, erofs, eacces,
	       enoent, trapped, other);
	free(q.dirs);
}

/* ------------------------------------------------------------------ */
/* Suites and modes                                                    */
/* ------------------------------------------------------------------ */

static void run_probes(void)
{
	load_own_tids();
	probe_environment();
	probe_open_host_files();                 /* 1 */
	probe_list("list-root", "/");            /* 2 */
	probe_list("list-proc", "/proc");
	probe_list("list-dev", "/dev");
	probe_pids();                            /* 3, 8 */
	probe_daemon_fds();                      /* 4 */
	probe_connect_sockets();                 /* 5 */
	probe_switch();                          /* 6 */
	probe_ptrace();                          /* 7 */
	probe_mknod();                           /* 9 */
	probe_mount();                           /* 10 */
	probe_setuid();                          /* 12 */
	probe_rlimit_raise();
	probe_bpf();                             /* 13 */
	probe_raw_sockets();                     /* 14 */
	probe_io_uring();                        /* 15 */
	probe_exec();                            /* 16 */
	probe_fork();                            /* 17 */
	probe_kernel();                          /* 18 */
	probe_fsize();                           /* 19 */
	probe_nofile();                          /* 20 */
	probe_ram_fd();                          /* 21 */
	probe_plant();                           /* 22 */
	probe_unshare();                         /* 11: last, may change our namespaces */
	report_done();
}

static int g_never; /* futex word the forkbomb threads wait on forever */

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;) {
		if (syscall(SYS_futex, &g_never, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0) < 0 && errno != EINTR &&
		    errno != EAGAIN) {
			struct timespec ts = { 3600, 0 };

			ignore_result(ppoll(NULL, 0, &ts, NULL));
		}
	}
	return NULL;
}

/* forkbomb: sleeping threads until pthread_create fails (pids.max,
 * RLIMIT_NPROC, memory) -> CONTAINED threads=<n> err=<errno>; reaching
 * 100000 -> ESCAPED. A trap during pthread_create (clone3 trapped instead
 * of ENOSYS) is reported as err=seccomp(N). */
static void run_forkbomb(void)
{
	pthread_attr_t attr;
	sigset_t term, old;
	int n, err = 0, trapped = 0;
	char errbuf[32];

	report("forkbomb-start", "INFO", "%s", "");
	/* The threads inherit a mask that blocks the shutdown signals, so
	 * those reach the main thread and interrupt its poll. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (n = 0; n < FORKBOMB_MAX; n++) {
		pthread_t th;
		int rc;

		g_sigsys_count = 0;
		rc = pthread_create(&th, &attr, sleeper, NULL);
		if (g_sigsys_count) {
			trapped = 1;
			break;
		}
		if (rc) {
			err = rc;
			break;
		}
		if (n % 256 == 255)
			service_step(0);
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (trapped)
		fmt(errbuf, sizeof(errbuf), "seccomp(%d)", (int)g_sigsys_nr);
	else
		fmt(errbuf, sizeof(errbuf), "%s", n >= FORKBOMB_MAX ? "none" : errname(err));
	report("forkbomb", n >= FORKBOMB_MAX ? "ESCAPED" : "CONTAINED", "threads=%d err=%s", n, errbuf);
	probe_fork();
	report_done();
}

/* memhog: touch anonymous memory until the cgroup OOM killer ends us. */
static void run_memhog(void)
{
	size_t mib = 0;
	int i;

	report("memhog-start", "INFO", "%s", "");
	for (i = 0; i < MEMHOG_MAX_CHUNKS; i++) {
		volatile char *p;
		size_t off;

		g_sigsys_count = 0;
		p = mmap(NULL, MEMHOG_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (g_sigsys_count || p == MAP_FAILED) {
			report("memhog", "CONTAINED", "mib=%zu mmap=%s", mib,
			       g_sigsys_count ? "seccomp" : errname(errno));
			report_done();
			return;
		}
		for (off = 0; off < MEMHOG_CHUNK; off += 4096)
			p[off] = 1;
		mib += MEMHOG_CHUNK >> 20;
		if (mib % 64 == 0)
			report("memhog-progress", "INFO", "mib=%zu", mib);
		else
			service_step(0);
	}
	report("memhog", "ESCAPED", "mib=%zu allocated and touched without being killed", mib);
	report_done();
}

/* Bad-input modes: a VMM that misbehaves without trying to escape.
 *   exit   write binary garbage to stderr and exit 3 at once;
 *   hang   accept QMP connections but never send the greeting (the daemon
 *          must give up on its own clock), for at most 10 minutes;
 *   flood  write to stderr (the VMM's log) without end: RLIMIT_FSIZE or the
 *          daemon's log cap must stop it (bounded: 1 GiB, then exit).
 * Returns 1 when the mode was one of these (and it has finished). */
static int bad_input_mode(void)
{
	static char junk[65536];
	size_t i;

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	switch (g_mode) {
	case MODE_EXIT:
		if (write(2, junk, 4096) < 0)
			return 1;
		return 1;
	case MODE_HANG: {
		int waited;
		for (waited = 0; waited < 600; waited++) {
			if (g_qmp_listen >= 0) {
				int c = accept(g_qmp_listen, NULL, NULL);
				(void)c; /* kept open, never answered */
			}
			sleep(1);
		}
		return 1;
	}
	case MODE_FLOOD: {
		size_t total;
		/* Like QEMU: no handler, so the limit kills. */
		signal(SIGXFSZ, SIG_DFL);
		for (total = 0; total < ((size_t)1 << 30); total += sizeof(junk)) {
			if (write(2, junk, sizeof(junk)) < 0)
				return 1; /* EFBIG: the file size limit */
		}
		return 1;
	}
	default:
		return 0;
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int i;

	if (argc > 1 && strncmp(argv[1], "exit-now", 8) == 0)
		_exit(0);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSYS, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term; /* no SA_RESTART: blocking calls return EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	for (i = 0; i < MAX_CONNS; i++) {
		g_qmp[i].fd = -1;
		g_con[i].fd = -1;
	}
	g_pid = getpid();
	g_report = malloc(REPORT_CAP);
	if (!g_report)
		return 1;

	if (argc > 1 && strcmp(argv[1], "monitor") == 0) {
		g_monitor = 1;
		parse_args(argc, argv, 2);
		g_qmp_listen = g_serial_listen = -1; /* the monitor serves no QMP */
		run_probes();
		/* Exit at once: closing fd 3 fails the daemon's pending call
		 * with EOF instead of leaving it to time out. */
		return 0;
	}

	parse_args(argc, argv, 1);
	if (bad_input_mode())
		return 3;
	if (g_qmp_listen >= 0)
		set_nonblock(g_qmp_listen);
	if (g_serial_listen >= 0)
		set_nonblock(g_serial_listen);
	wait_for_console();

	switch (g_mode) {
	case MODE_FORKBOMB:
		run_forkbomb();
		break;
	case MODE_MEMHOG:
		run_memhog();
		break;
	default:
		run_probes();
		break;
	}
	serve_forever();
}
