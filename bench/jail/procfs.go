package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// memory is one QEMU process's memory, in MiB, from /proc/PID/status and
// /proc/PID/smaps_rollup. Guest RAM is a memfd, so what the guest touched
// shows in RssShmem; QEMU's own heap and TCG translation cache in RssAnon;
// its binary and libraries in RssFile.
type memory struct {
	RSSMiB      float64 `json:"rss_mib"`
	RSSAnonMiB  float64 `json:"rss_anon_mib"`
	RSSFileMiB  float64 `json:"rss_file_mib"`
	RSSShmemMiB float64 `json:"rss_shmem_mib"`
	// PSSMiB divides each shared page by the number of processes mapping
	// it: the pages of QEMU's binary and libraries count in part when
	// other processes (any other QEMU on the host, jailed or not: the jail
	// binds the same files) map them too. PSSFileMiB is that file-backed
	// part, the one that moves with what else runs.
	PSSMiB     float64 `json:"pss_mib"`
	PSSFileMiB float64 `json:"pss_file_mib"`
}

func readMemory(pid int) (memory, error) {
	var m memory
	st, err := kBFields(fmt.Sprintf("/proc/%d/status", pid), "VmRSS", "RssAnon", "RssFile", "RssShmem")
	if err != nil {
		return m, err
	}
	roll, err := kBFields(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss", "Pss_File")
	if err != nil {
		return m, err
	}
	m.RSSMiB, m.RSSAnonMiB, m.RSSFileMiB, m.RSSShmemMiB = st[0]/1024, st[1]/1024, st[2]/1024, st[3]/1024
	m.PSSMiB, m.PSSFileMiB = roll[0]/1024, roll[1]/1024
	return m, nil
}

// kBFields reads "Key:  N kB" lines of a /proc file and returns the values
// of keys, in order, in kB. A missing key is an error.
func kBFields(path string, keys ...string) ([]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	found := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseFloat(f[0], 64); err == nil {
				found[k] = n
			}
		}
	}
	out := make([]float64, len(keys))
	for i, k := range keys {
		v, ok := found[k]
		if !ok {
			return nil, fmt.Errorf("%s: no %s", path, k)
		}
		out[i] = v
	}
	return out, nil
}

// confinement is what /proc says about how a process is confined.
type confinement struct {
	ownMountNS     bool // in a mount namespace other than ours
	seccompFilters int  // stacked seccomp filters (Seccomp_filters)
}

// inspect checks that pid is a QEMU and reads how it is confined. The
// benchmark uses it to make sure the jailed daemon's VMM really is jailed
// and the unjailed one's is not, so a misconfigured run cannot pass as a
// comparison.
func inspect(pid int) (confinement, error) {
	var c confinement
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return c, err
	}
	if !strings.HasPrefix(string(comm), "qemu") {
		return c, fmt.Errorf("pid %d is %q, not QEMU", pid, strings.TrimSpace(string(comm)))
	}
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return c, err
	}
	ours, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return c, err
	}
	c.ownMountNS = theirs != ours
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return c, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Seccomp_filters:"); ok {
			c.seccompFilters, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return c, nil
}

// clockTick is the unit of /proc/PID/stat and /proc/stat times
// (USER_HZ, 100 on every Linux architecture Bulwark runs on).
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU time (user + system) pid has used, all its threads,
// exited ones included.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after its closing parenthesis start with field 3, state.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q: too short", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] { // utime (14), stime (15)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// hostBusy is the CPU time all CPUs of the host have spent not idle since
// boot (user, nice, system, irq, softirq and steal of /proc/stat).
func hostBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}
