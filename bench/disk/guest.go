package main

import (
	"fmt"
	"strconv"
	"strings"
)

// Ops, in the order a rep runs them.
const (
	opReadCold = "read-cold" // guest and host page caches dropped first
	opWrite    = "write"     // O_DIRECT, fsync at the end
	opReadWarm = "read-warm" // guest cache dropped; the host's still holds what QEMU just wrote
)

// tag starts every line the guest script prints for the benchmark. The
// console also carries kernel messages and init's own lines.
const tag = "BENCHDISK"

// guestDisk is one volume as the guest sees it. The guest finds it by its
// size in 512-byte sectors: virtio-mmio devices are not numbered in the
// order they are given, so /dev/vdX cannot be assumed.
type guestDisk struct {
	Case    string // "raw" or "qcow2"
	Sectors int64
}

// ddWrite and ddRead are the dd command lines both sides run, with OF/IF
// the target; the same flags on busybox (guest) and coreutils (host).
func ddWrite(target string, mib int) string {
	return fmt.Sprintf("dd if=/dev/zero of=%s bs=1M count=%d oflag=direct conv=fsync,notrunc", target, mib)
}

func ddRead(target string, mib int) string {
	return fmt.Sprintf("dd if=%s of=/dev/null bs=1M count=%d", target, mib)
}

// bootPlan is what one boot of the guest does: cold reads of what the
// previous boot wrote (the host evicted the volume files from its page
// cache while the VM was stopped), then a write and a warm read on each
// disk. Cases are listed in the order this boot runs them.
type bootPlan struct {
	Boot     int
	Cases    []guestDisk
	ReadCold bool
	Write    bool // write, then read-warm
	SizeMiB  int
	Warm     guestDisk // read untimed before anything else (optional)
}

// script is the user-data shell script (busybox ash) for one boot. Each op
// is timed in the guest between two readings of the monotonic clock
// ("now at N nsecs" in /proc/timer_list; busybox date has no %N); the
// difference is taken on the host, so ash's arithmetic width does not
// matter. Output lines:
//
//	BENCHDISK <boot> start t=<ns>
//	BENCHDISK <boot> <case> <op> rc=<rc> t0=<ns> t1=<ns>
//	BENCHDISK <boot> err <text>      (a failed dd's stderr, or a missing disk)
//	BENCHDISK <boot> done t=<ns>
func (p bootPlan) script() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("B=%d", p.Boot)
	w(`now() { sed -n '3{s/[^0-9]//g;p;q}' /proc/timer_list; }`)
	w(`disk() { for s in /sys/block/vd*; do [ "$(cat $s/size)" = "$1" ] && { echo /dev/${s##*/}; return; }; done; }`)
	w(`run() { c=$1; o=$2; shift 2; echo 3 >/proc/sys/vm/drop_caches; t0=$(now); "$@" >/dev/null 2>/tmp/dd.err; rc=$?; t1=$(now)`)
	w(`  echo "%s $B $c $o rc=$rc t0=$t0 t1=$t1"; [ $rc = 0 ] || sed "s/^/%s $B err /" /tmp/dd.err; }`, tag, tag)
	// An untimed buffered read of a never-written volume (holes: no disk
	// I/O on the host) first. A freshly booted guest's RAM is not yet
	// backed on the host (a memfd, filled on first touch), and the first
	// buffered read of a boot otherwise pays for populating the pages its
	// page cache takes: measured at 128 MiB, 745 ms for the first read of
	// a disk against 210 ms for the next, whichever disk came first.
	// Filling a tmpfs instead is capped by what the guest can spare.
	if p.Warm.Sectors > 0 {
		w(`D_warm=$(disk %d) && echo 3 >/proc/sys/vm/drop_caches && dd if=$D_warm of=/dev/null bs=1M count=%d 2>/dev/null`, p.Warm.Sectors, p.SizeMiB)
	}
	w(`echo "%s $B start t=$(now)"`, tag)
	for _, d := range p.Cases {
		w(`D_%s=$(disk %d); [ -n "$D_%s" ] || echo "%s $B err no disk of %d sectors (%s)"`, d.Case, d.Sectors, d.Case, tag, d.Sectors, d.Case)
	}
	if p.ReadCold {
		for _, d := range p.Cases {
			w(`run %s %s %s`, d.Case, opReadCold, ddRead("$D_"+d.Case, p.SizeMiB))
		}
	}
	if p.Write {
		for _, d := range p.Cases {
			w(`run %s %s %s`, d.Case, opWrite, ddWrite("$D_"+d.Case, p.SizeMiB))
			w(`run %s %s %s`, d.Case, opReadWarm, ddRead("$D_"+d.Case, p.SizeMiB))
		}
	}
	w(`echo "%s $B done t=$(now)"`, tag)
	return b.String()
}

// sample is one timed op.
type sample struct {
	Boot    int     `json:"boot"`
	Case    string  `json:"case"`
	Op      string  `json:"op"`
	Seconds float64 `json:"seconds"`
}

// bootOutput is what the guest reported for one boot.
type bootOutput struct {
	Samples     []sample
	Errors      []string
	Done        bool
	GuestSpanNS int64 // start → done on the guest's clock
}

// parseConsole reads the lines of boot in a console log. Lines of other
// boots (the log spans restarts) and anything else are skipped. A failed
// dd, a missing disk or a line that does not parse (a kernel message can
// land in the middle of one) is reported in Errors; the caller checks that
// every sample it expects is there.
func parseConsole(log string, boot int) bootOutput {
	var out bootOutput
	var start int64 = -1
	prefix := fmt.Sprintf("%s %d ", tag, boot)
	bad := func(line string) { out.Errors = append(out.Errors, "unparsed line: "+line) }
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimRight(line, "\r")
		i := strings.Index(line, prefix)
		if i < 0 {
			continue
		}
		f := strings.Fields(line[i+len(prefix):])
		switch {
		case len(f) == 0:
			bad(line)
		case f[0] == "err":
			out.Errors = append(out.Errors, strings.Join(f[1:], " "))
		case f[0] == "start" || f[0] == "done":
			t, err := kv(f[1:], "t")
			if err != nil {
				bad(line)
				continue
			}
			if f[0] == "start" {
				start = t
			} else {
				out.Done = true
				if start >= 0 {
					out.GuestSpanNS = t - start
				}
			}
		case len(f) == 5:
			rc, err1 := kv(f[2:], "rc")
			t0, err2 := kv(f[2:], "t0")
			t1, err3 := kv(f[2:], "t1")
			switch {
			case err1 != nil || err2 != nil || err3 != nil || t1 <= t0:
				bad(line)
			case rc != 0:
				out.Errors = append(out.Errors, fmt.Sprintf("%s %s: dd exited %d", f[0], f[1], rc))
			default:
				out.Samples = append(out.Samples, sample{Boot: boot, Case: f[0], Op: f[1], Seconds: float64(t1-t0) / 1e9})
			}
		default:
			bad(line)
		}
	}
	return out
}

// kv finds key=<int> among fields.
func kv(fields []string, key string) (int64, error) {
	for _, f := range fields {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s=", key)
}
