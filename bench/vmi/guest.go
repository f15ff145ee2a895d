package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/benchrun"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/hv/qemu"
)

// Console markers printed by the guest's init and by the user-data script.
const (
	markReady   = "bulwark-guest-ready"
	markUDStart = "bulwark-userdata start"
	markUDExit  = "bulwark-userdata exit"
	markProcs   = "vmibench-procs-started"
	spinTag     = "vmibench-spin"
)

// userdataScript starts procs sleeping processes, reports how many of them
// the guest's /proc shows, then loops forever: spin shell-arithmetic steps,
// then one console line with the iteration count and the guest's uptime
// (read with the shell's own read, no fork).
func userdataScript(procs, spin int) string {
	return fmt.Sprintf(`n=0
while [ $n -lt %d ]; do sleep 100000 & n=$((n+1)); done
read -r up rest </proc/uptime
echo "%s $n $up $(ls -d /proc/[0-9]* | wc -l)"
i=0
while :; do
	j=0
	while [ $j -lt %d ]; do j=$((j+1)); done
	i=$((i+1))
	read -r up rest </proc/uptime
	echo "%s $i $up"
done
`, procs, markProcs, spin, spinTag)
}

// writeUserdata writes the script as the guest image expects it on a
// read-only virtio disk: "#!bulwark-userdata" first, padded with zero
// bytes to a multiple of 4096.
func writeUserdata(path, script string) error {
	body := "#!bulwark-userdata\n" + script + "\n"
	if len(body) > 65536 {
		return errors.New("user data too long")
	}
	b := make([]byte, (len(body)+4095)/4096*4096)
	copy(b, body)
	return os.WriteFile(path, b, 0o600)
}

// guestVM is one running QEMU.
type guestVM struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	qmp     *qemu.QMP
	con     *console
	ramPath string
	ramSize uint64
	kernel  string
	logPath string
	started time.Time
}

type vmConfig struct {
	qemu, accel    string
	vcpus, memMiB  int
	kernel, initrd string
	userdata       string
	dir, ramDir    string
	consoleLogPath string
}

// startVM starts QEMU with qemu.Args.Build (the backend's command line,
// run as this user and without the daemon's descriptor passing), connects
// to its console and QMP sockets and returns once both are up.
func startVM(ctx context.Context, c vmConfig) (g *guestVM, err error) {
	ram := filepath.Join(c.ramDir, "mem")
	mf, err := os.OpenFile(ram, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	mf.Close()
	args := qemu.Args{
		Name: "vmibench", Accel: c.accel, VCPUs: c.vcpus, MemoryMiB: c.memMiB, MemPath: ram,
		Kernel: c.kernel, Initrd: c.initrd, Cmdline: "bulwark.hostname=vmibench",
		QMPSocket: filepath.Join(c.dir, "qmp.sock"), ConsoleSocket: filepath.Join(c.dir, "console.sock"),
		Disks: []qemu.DiskArg{{Path: c.userdata, ReadOnly: true}},
	}
	if c.accel == "tcg" {
		args.TSCkHz = hv.HostTSCkHz()
	}
	logPath := filepath.Join(c.dir, "qemu.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(c.qemu, args.Build()...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session, so a terminal's Ctrl-C reaches only this process,
	// which then kills QEMU; SIGKILL to QEMU if this process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	g = &guestVM{cmd: cmd, exited: make(chan struct{}), ramPath: ram, ramSize: uint64(c.memMiB) << 20,
		kernel: c.kernel, logPath: logPath}
	g.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	go func() {
		cmd.Wait()
		close(g.exited)
	}()
	defer func() {
		if err != nil {
			g.stop()
		}
	}()

	// Output written before the console socket has a client is dropped
	// (wait=off); the socket appears within tens of ms, long before the
	// kernel's first line.
	conn, err := dialRetry(ctx, g, args.ConsoleSocket)
	if err != nil {
		return g, fmt.Errorf("console socket: %w", err)
	}
	logc, err := os.Create(c.consoleLogPath)
	if err != nil {
		conn.Close()
		return g, err
	}
	g.con = newConsole(conn, logc)
	var q *qemu.QMP
	for {
		q, err = qemu.DialQMP(ctx, args.QMPSocket)
		if err == nil {
			break
		}
		select {
		case <-g.exited:
			return g, fmt.Errorf("qmp: qemu exited: %s", benchrun.Tail(logPath, 1024))
		case <-ctx.Done():
			return g, fmt.Errorf("qmp: %w (last error %v)", ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	g.qmp = q
	return g, nil
}

// dialRetry waits for a Unix socket of QEMU to accept.
func dialRetry(ctx context.Context, g *guestVM, path string) (net.Conn, error) {
	for {
		conn, err := net.Dial("unix", path)
		if err == nil {
			return conn, nil
		}
		select {
		case <-g.exited:
			return nil, fmt.Errorf("qemu exited: %s", benchrun.Tail(g.logPath, 1024))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// stop kills QEMU and waits for it; safe to call more than once.
func (g *guestVM) stop() {
	if g.qmp != nil {
		g.qmp.Close()
	}
	if g.con != nil {
		g.con.close()
	}
	if g.cmd.Process != nil {
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// registers reads the vCPU registers as the daemon does (QMP
// human-monitor-command "info registers -a", parsed by hv).
func (g *guestVM) registers(ctx context.Context) ([]hv.Registers, error) {
	var text string
	if err := g.qmp.Execute(ctx, "human-monitor-command", map[string]string{"command-line": "info registers -a"}, &text); err != nil {
		return nil, err
	}
	return hv.ParseInfoRegisters(text)
}

// cpuSeconds is QEMU's user+system CPU time so far.
func (g *guestVM) cpuSeconds() float64 {
	return procCPUSeconds(g.cmd.Process.Pid)
}

// waitMark waits for a console marker, failing early if QEMU exits or the
// user-data script ends.
func (g *guestVM) waitMark(ctx context.Context, mark string) (time.Time, error) {
	for {
		ch := g.con.changed()
		if t, ok := g.con.mark(mark); ok {
			return t, nil
		}
		if _, ok := g.con.mark(markUDExit); ok {
			return time.Time{}, fmt.Errorf("waiting for %q: the user-data script ended; console tail:\n%s", mark, g.con.tail())
		}
		select {
		case <-ch:
		case <-g.exited:
			return time.Time{}, fmt.Errorf("waiting for %q: qemu exited: %s", mark, benchrun.Tail(g.logPath, 1024))
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for %q: %w; console tail:\n%s", mark, ctx.Err(), g.con.tail())
		}
	}
}

// spinSample is one line of the guest loop.
type spinSample struct {
	Host time.Time // when this process read the line
	I    int       // iterations done
	Up   float64   // guest uptime (s, 10 ms resolution) when printed
}

// console reads the guest's serial console: it logs every line to a file,
// remembers when each marker first appeared and keeps the loop's lines.
type console struct {
	conn net.Conn
	log  *os.File
	done chan struct{}

	mu      sync.Mutex
	marks   map[string]time.Time
	spins   []spinSample
	last    []string // recent lines, for error messages
	notify  chan struct{}
	procsOK string // the marker line itself
}

var spinRe = regexp.MustCompile(spinTag + ` (\d+) (\d+(?:\.\d+)?)`)

func newConsole(conn net.Conn, log *os.File) *console {
	c := &console{conn: conn, log: log, done: make(chan struct{}), marks: map[string]time.Time{}, notify: make(chan struct{})}
	go c.read()
	return c
}

func (c *console) read() {
	defer close(c.done)
	defer c.log.Close()
	br := bufio.NewReaderSize(c.conn, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		now := time.Now()
		if len(line) > 0 {
			c.log.Write(line)
			c.add(now, strings.TrimRight(string(line), "\r\n"))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (c *console) add(now time.Time, line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := spinRe.FindStringSubmatch(line); m != nil {
		i, err1 := strconv.Atoi(m[1])
		up, err2 := strconv.ParseFloat(m[2], 64)
		if err1 == nil && err2 == nil {
			c.spins = append(c.spins, spinSample{Host: now, I: i, Up: up})
		}
	} else {
		c.last = append(c.last, line)
		if len(c.last) > 40 {
			c.last = c.last[len(c.last)-40:]
		}
	}
	for _, mk := range []string{markReady, markUDStart, markUDExit, markProcs} {
		if _, seen := c.marks[mk]; !seen && strings.Contains(line, mk) {
			c.marks[mk] = now
			if mk == markProcs {
				c.procsOK = line[strings.Index(line, mk):]
			}
		}
	}
	close(c.notify)
	c.notify = make(chan struct{})
}

// changed returns a channel closed at the next line.
func (c *console) changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.notify
}

func (c *console) mark(m string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.marks[m]
	return t, ok
}

func (c *console) procsLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procsOK
}

// spinsBetween returns the loop's lines read in [from, to).
func (c *console) spinsBetween(from, to time.Time) []spinSample {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []spinSample
	for _, s := range c.spins {
		if !s.Host.Before(from) && s.Host.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

func (c *console) spinCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spins)
}

func (c *console) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.last, "\n")
}

func (c *console) close() {
	c.conn.Close()
	<-c.done
}

// procCPUSeconds is a process's user+system CPU time from /proc (clock
// ticks of 1/100 s, as on every x86-64 Linux).
func procCPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// hostCPU is /proc/stat's first line: busy and total CPU seconds of the
// whole machine (all cores), steal included in busy.
func hostCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var v [8]float64
	for i := range v {
		v[i], _ = strconv.ParseFloat(f[i+1], 64)
	}
	// user nice system idle iowait irq softirq steal
	for _, x := range v {
		total += x
	}
	busy = total - v[3] - v[4]
	return busy / 100, total / 100
}

// selfCPUSeconds is this process's user+system CPU time.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
