package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The guests are the busybox initramfs of `bulwark image build`; their
// work is a user-data script on a read-only disk, run after boot.

// spinMarker starts each report of the victim's counting loop:
// "spin N UPTIME", N chunks done, UPTIME the guest's /proc/uptime.
const spinMarker = "spin "

// hogMarker is what the attacker prints once its loops run.
const hogMarker = "hog-started"

// victimScript counts in chunks of chunk iterations and reports after each
// chunk; read is a shell builtin, so the loop never forks.
func victimScript(chunk int) string {
	return fmt.Sprintf("n=0\nwhile :; do\n j=0\n while [ $j -lt %d ]; do j=$((j+1)); done\n"+
		" n=$((n+1)); read up rest </proc/uptime; echo \"%s$n $up\"\ndone\n", chunk, spinMarker)
}

// attackerScript spins one shell loop per vCPU.
func attackerScript(vcpus int) string {
	var b strings.Builder
	for range vcpus {
		b.WriteString("(while :; do :; done) &\n")
	}
	b.WriteString("echo " + hogMarker + "\n")
	return b.String()
}

// writeUserData writes a user-data disk: the image's init runs a virtio
// disk whose first line is "#!bulwark-userdata" (at most 64 KiB, padded
// to whole 4 KiB blocks).
func writeUserData(path, script string) error {
	body := "#!bulwark-userdata\n" + script + "\n"
	if len(body) > 65536 {
		return fmt.Errorf("user data of %d bytes: at most 65536", len(body))
	}
	b := make([]byte, (len(body)+4095)/4096*4096)
	copy(b, body)
	return os.WriteFile(path, b, 0o644)
}

// spinReport is one report of the victim's loop.
type spinReport struct {
	N      uint64  // chunks done
	Uptime float64 // guest seconds since boot
}

// Bounds of a report: the guest writes its console, so nothing it prints
// is trusted to be well formed.
const (
	maxSpinLine  = 64
	maxSpinCount = 1 << 40
	maxUptime    = 1e9
)

// lastSpinReport returns the last well-formed report in a console log
// tail. The log's last line may be cut short (the guest is still writing
// it), so only lines ended by a newline count.
func lastSpinReport(log []byte) (spinReport, bool) {
	end := bytes.LastIndexByte(log, '\n')
	for end > 0 {
		start := bytes.LastIndexByte(log[:end], '\n') + 1
		if r, ok := parseSpinLine(log[start:end]); ok {
			return r, true
		}
		end = start - 1
	}
	return spinReport{}, false
}

// parseSpinLine reads "spin N UPTIME" (a trailing \r allowed), UPTIME as
// /proc/uptime writes it: digits, a dot, two digits.
func parseSpinLine(line []byte) (spinReport, bool) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > maxSpinLine {
		return spinReport{}, false
	}
	rest, ok := bytes.CutPrefix(line, []byte(spinMarker))
	if !ok {
		return spinReport{}, false
	}
	f := strings.Split(string(rest), " ")
	if len(f) != 2 || !digits(f[0]) {
		return spinReport{}, false
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || n > maxSpinCount {
		return spinReport{}, false
	}
	whole, frac, ok := strings.Cut(f[1], ".")
	if !ok || !digits(whole) || len(frac) != 2 || !digits(frac) {
		return spinReport{}, false
	}
	up, err := strconv.ParseFloat(f[1], 64)
	if err != nil || up > maxUptime {
		return spinReport{}, false
	}
	return spinReport{N: n, Uptime: up}, true
}

// digits reports whether s is 1 to 20 ASCII digits.
func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// loopRate is the iterations per guest second between two reports.
func loopRate(a, b spinReport, chunk int) (float64, error) {
	if b.N < a.N || b.Uptime <= a.Uptime {
		return 0, fmt.Errorf("victim's loop went from %d chunks at %.2fs to %d at %.2fs: not forward", a.N, a.Uptime, b.N, b.Uptime)
	}
	return float64(b.N-a.N) * float64(chunk) / (b.Uptime - a.Uptime), nil
}
