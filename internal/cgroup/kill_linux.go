package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// killIfMember sends SIGKILL to process pid if its /proc/PID/cgroup
// satisfies member. Needs Linux 5.3 (pidfd_open).
//
// Why this cannot kill an unrelated process that got a reused pid: the
// signal goes through a pidfd, which names one process for its lifetime,
// and the membership check runs after the pidfd is opened. If the pid was
// reused before pidfd_open, the pidfd and the /proc read both see the new
// process, which fails the check. If it is reused after, the pidfd still
// names the exited process, and the signal fails with ESRCH.
func killIfMember(pid int, member func(procCgroup string) bool) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil // gone
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return nil // exited meanwhile
	}
	if err != nil {
		return err
	}
	if !member(string(b)) {
		return nil
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	return nil
}
