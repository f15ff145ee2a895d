package daemon

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// closeInheritedOnExec marks every descriptor above stderr that the daemon
// inherited as close-on-exec, so none of them leaks into a hypervisor
// process (which gets only what the backend passes explicitly).
func closeInheritedOnExec() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// dgramQlen returns net.unix.max_dgram_qlen, or -1 if unreadable.
func dgramQlen() int {
	b, err := os.ReadFile("/proc/sys/net/unix/max_dgram_qlen")
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}
