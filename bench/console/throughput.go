package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/console"
)

const mb = 1e6

// rawCopy is the peer: one stream of chunks over a Unix stream socket.
type rawCopy struct {
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"`
	MBps    float64 `json:"mb_per_s"`
}

// measureRaw copies chunk-sized writes through a Unix stream socket into a
// reader with the manager's 32 KiB buffer for -seconds.
func measureRaw(cfg config, tmp string) (rawCopy, error) {
	var res rawCopy
	sock := filepath.Join(tmp, "raw.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return res, err
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ach := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ach <- accepted{c, err}
	}()
	w, err := net.Dial("unix", sock)
	if err != nil {
		return res, err
	}
	defer w.Close()
	a := <-ach
	if a.err != nil {
		return res, a.err
	}
	r := a.c
	defer r.Close()

	var got atomic.Int64
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	chunk := text(cfg.chunk, "raw")
	dur := time.Duration(cfg.seconds * float64(time.Second))
	t0 := time.Now()
	deadline := t0.Add(dur)
	w.SetWriteDeadline(deadline.Add(5 * time.Second))
	for time.Now().Before(deadline) {
		if _, err := w.Write(chunk); err != nil {
			return res, err
		}
	}
	// What the reader has at the deadline is what counts.
	res.Bytes = got.Load()
	res.Seconds = time.Since(t0).Seconds()
	res.MBps = float64(res.Bytes) / mb / res.Seconds
	w.Close()
	<-readDone
	return res, nil
}

// text returns n bytes of printable lines (CRLF-terminated, as a serial
// console sends them) naming tag; the sanitiser passes all of it.
func text(n int, tag string) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "[%s %06d] the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJ\r\n", tag, i)
	}
	return b.Bytes()[:n]
}

type perClient struct {
	MinMBps    float64 `json:"min_mb_per_s"`
	MedianMBps float64 `json:"median_mb_per_s"`
	MaxMBps    float64 `json:"max_mb_per_s"`
	// Fraction of what its VM produced that the client got (after the
	// drain), min and median.
	MinFraction    float64 `json:"min_delivered_fraction"`
	MedianFraction float64 `json:"median_delivered_fraction"`
}

type throughput struct {
	Run      int     `json:"run"` // order in the run, from 1
	Consoles int     `json:"consoles"`
	Stalled  int     `json:"stalled_clients"`
	Readers  int     `json:"reading_clients"`
	Seconds  float64 `json:"seconds"`

	ProducedBytes int64   `json:"produced_bytes"`
	ProducedMBps  float64 `json:"produced_mb_per_s"`
	// Produced for the reading clients' VMs only.
	ReadersProducedBytes int64 `json:"readers_produced_bytes"`
	// Output payload (markers excluded) the reading clients had received
	// when the producers stopped, and the rate.
	DeliveredBytes int64   `json:"delivered_bytes"`
	DeliveredMBps  float64 `json:"delivered_mb_per_s"`
	// After the producers stopped, queues drained: payload received, bytes
	// the drop markers reported, and what neither accounts for (0 when
	// every byte is delivered or reported dropped).
	DeliveredAfterDrain int64     `json:"delivered_after_drain_bytes"`
	Markers             int64     `json:"drop_markers"`
	MarkerDropped       int64     `json:"marker_reported_dropped_bytes"`
	Unaccounted         int64     `json:"unaccounted_bytes"`
	DrainSeconds        float64   `json:"drain_seconds"`
	PerClient           perClient `json:"per_reading_client"`
	// The stalled clients' VMs: produced bytes (the clients read nothing).
	StalledProducedBytes int64 `json:"stalled_produced_bytes"`

	RecordingBytes   int64   `json:"recording_bytes"`
	Recordings       int     `json:"recordings"`
	RecordingsCapped int     `json:"recordings_at_size_limit"`
	RecordingMaxMiB  float64 `json:"recording_max_mib"`

	BaseRSSMiB    float64 `json:"base_rss_mib"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"` // VmHWM, reset before the phase
	SampledRSSMiB float64 `json:"sampled_max_rss_mib"`
	PeakHeapMiB   float64 `json:"sampled_max_heap_inuse_mib"`
	QueueBoundMiB float64 `json:"queue_bound_mib"` // consoles × per-client output queue

	// CPU time of this process per second of the flood, and CPU time
	// the hypervisor stole from the machine (all CPUs) per second.
	CPUCores   float64 `json:"cpu_cores_used"`
	StealCores float64 `json:"steal_cores"`

	DeliveredVsRaw float64 `json:"delivered_vs_raw"`
	ProducedVsRaw  float64 `json:"produced_vs_raw"`
}

// reader is one WebSocket client that reads everything.
type reader struct {
	con       *client.Console
	payload   atomic.Int64 // output bytes, markers excluded
	markers   atomic.Int64
	dropped   atomic.Int64 // bytes the markers reported
	err       error
	done      chan struct{}
	produced  int64
	atStop    int64
	holdingCh chan struct{}
}

var markerHead = []byte("\r\n[bulwark: ")

const markerMid = " bytes of output dropped: this client reads too slowly]\r\n"

// account counts p's payload and its drop markers.
func (r *reader) account(p []byte) {
	payload := int64(len(p))
	for {
		i := bytes.Index(p, markerHead)
		if i < 0 {
			break
		}
		rest := p[i+len(markerHead):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 || !bytes.HasPrefix(rest[j:], []byte(markerMid)) {
			p = rest // not a marker (the producers never write one)
			continue
		}
		n, _ := strconv.ParseInt(string(rest[:j]), 10, 64)
		r.markers.Add(1)
		r.dropped.Add(n)
		payload -= int64(len(markerHead) + j + len(markerMid))
		p = rest[j+len(markerMid):]
	}
	r.payload.Add(payload)
}

func (r *reader) run() {
	defer close(r.done)
	ctx, cancel := ctxFor(10 * time.Minute)
	defer cancel()
	held := false
	for {
		out, ctl, err := r.con.Read(ctx)
		if err != nil {
			r.err = err
			return
		}
		if ctl != nil {
			if !held && ctl.Type == "status" && ctl.State == "holding" {
				held = true
				close(r.holdingCh)
			}
			if ctl.Type == "closed" {
				return
			}
			continue
		}
		r.account(out)
	}
}

// measureThroughput floods cfg.consoles VMs' consoles through one broker,
// each read by a WebSocket client except stalled of them, which never read.
func measureThroughput(cfg config, tmp string, stalled int) (throughput, error) {
	res := throughput{Consoles: cfg.consoles, Stalled: stalled, Readers: cfg.consoles - stalled,
		RecordingMaxMiB: 64, QueueBoundMiB: float64(cfg.consoles) * 256 / 1024}
	dir := filepath.Join(tmp, fmt.Sprintf("flood-%d", stalled))
	recDir := filepath.Join(dir, "recordings")
	if err := os.MkdirAll(recDir, 0o700); err != nil {
		return res, err
	}
	defer os.RemoveAll(dir) // the recordings reach tens of MiB each

	runtime.GC()
	debug.FreeOSMemory()
	res.BaseRSSMiB = procStatusMiB("VmRSS")
	resetPeakRSS()

	b, err := console.New(console.Config{RecordDir: recDir}, discardInput{}, nil)
	if err != nil {
		return res, err
	}
	brokerClosed := false
	closeBroker := func() {
		if !brokerClosed {
			brokerClosed = true
			withTimeout(20*time.Second, b.Close)
		}
	}
	defer closeBroker()
	srv, err := startAPI(filepath.Join(dir, "api.sock"), b)
	if err != nil {
		return res, err
	}
	defer srv.Close()
	cl := client.New(srv.sock)

	// Stalled clients are spread over the VMs (every n-th).
	isStalled := make([]bool, cfg.consoles)
	for k := range stalled {
		isStalled[k*cfg.consoles/stalled+cfg.consoles/stalled-1] = true
	}
	vms := make([]string, cfg.consoles)
	readers := make([]*reader, cfg.consoles)
	var cons []*client.Console
	closeAll := func() {
		var wg sync.WaitGroup
		for _, c := range cons {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Close()
			}()
		}
		withTimeout(15*time.Second, wg.Wait)
		cons = nil
	}
	defer closeAll()
	for i := range vms {
		vms[i] = fmt.Sprintf("vm%03d", i)
		dctx, dcancel := ctxFor(10 * time.Second)
		con, err := cl.DialConsole(dctx, vms[i], client.ConsoleOptions{})
		dcancel()
		if err != nil {
			return res, fmt.Errorf("dial console %s: %w", vms[i], err)
		}
		cons = append(cons, con)
		if isStalled[i] {
			continue // dials, then never reads
		}
		r := &reader{con: con, done: make(chan struct{}), holdingCh: make(chan struct{})}
		readers[i] = r
		go r.run()
	}
	// Every VM's console must be held before the flood starts.
	deadline := time.Now().Add(15 * time.Second)
	for i, vm := range vms {
		for len(b.Status(vm).Holders) != 1 {
			if time.Now().After(deadline) {
				return res, fmt.Errorf("console of %s not held after 15 s", vm)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if r := readers[i]; r != nil {
			select {
			case <-r.holdingCh:
			case <-r.done:
				return res, fmt.Errorf("client of %s ended: %v", vm, r.err)
			case <-time.After(time.Until(deadline)):
				return res, fmt.Errorf("client of %s saw no holding status", vm)
			}
		}
	}

	// Memory sampler.
	var maxRSS, maxHeap float64
	sampStop := make(chan struct{})
	sampDone := make(chan struct{})
	go func() {
		defer close(sampDone)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			if v := procStatusMiB("VmRSS"); v > maxRSS {
				maxRSS = v
			}
			runtime.ReadMemStats(&ms)
			if v := float64(ms.HeapInuse) / (1 << 20); v > maxHeap {
				maxHeap = v
			}
			select {
			case <-sampStop:
				return
			case <-t.C:
			}
		}
	}()

	// The flood: a producer per VM, never blocking (Output never does).
	var stop atomic.Bool
	produced := make([]int64, cfg.consoles)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i, vm := range vms {
		chunk := text(cfg.chunk, vm)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			var n int64
			for !stop.Load() {
				b.Output(vm, chunk)
				n += int64(len(chunk))
				if cfg.yield {
					runtime.Gosched()
				}
			}
			produced[i] = n
		}()
	}
	dur := time.Duration(cfg.seconds * float64(time.Second))
	cpu0, steal0 := cpuTime(), stealTime()
	t0 := time.Now()
	close(gate)
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()
	res.Seconds = time.Since(t0).Seconds()
	res.CPUCores = (cpuTime() - cpu0).Seconds() / res.Seconds
	if steal0 >= 0 {
		res.StealCores = (stealTime() - steal0) / res.Seconds
	}
	for i, r := range readers {
		res.ProducedBytes += produced[i]
		if r == nil {
			res.StalledProducedBytes += produced[i]
			continue
		}
		r.produced = produced[i]
		r.atStop = r.payload.Load()
		res.ReadersProducedBytes += produced[i]
		res.DeliveredBytes += r.atStop
	}
	res.ProducedMBps = float64(res.ProducedBytes) / mb / res.Seconds
	res.DeliveredMBps = float64(res.DeliveredBytes) / mb / res.Seconds

	// Drain: every reading client gets the rest of its queue and, for what
	// was dropped, a marker.
	td := time.Now()
	drainDeadline := td.Add(10 * time.Second)
	for _, r := range readers {
		for r != nil && r.payload.Load()+r.dropped.Load() < r.produced && time.Now().Before(drainDeadline) {
			select {
			case <-r.done:
				return res, fmt.Errorf("a client ended during the drain: %v", r.err)
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	res.DrainSeconds = time.Since(td).Seconds()
	close(sampStop)
	<-sampDone
	res.PeakRSSMiB = procStatusMiB("VmHWM")
	res.SampledRSSMiB = maxRSS
	res.PeakHeapMiB = maxHeap

	var rates, fracs []float64
	for _, r := range readers {
		if r == nil {
			continue
		}
		res.DeliveredAfterDrain += r.payload.Load()
		res.Markers += r.markers.Load()
		res.MarkerDropped += r.dropped.Load()
		res.Unaccounted += r.produced - r.payload.Load() - r.dropped.Load()
		rates = append(rates, float64(r.atStop)/mb/res.Seconds)
		if r.produced > 0 {
			fracs = append(fracs, float64(r.payload.Load())/float64(r.produced))
		}
	}
	if len(rates) > 0 {
		slices.Sort(rates)
		res.PerClient.MinMBps, res.PerClient.MaxMBps = rates[0], rates[len(rates)-1]
		res.PerClient.MedianMBps = rates[len(rates)/2]
	}
	if len(fracs) > 0 {
		slices.Sort(fracs)
		res.PerClient.MinFraction, res.PerClient.MedianFraction = fracs[0], fracs[len(fracs)/2]
	}

	// End the sessions and the broker (flushes the recordings), then weigh
	// the recordings.
	closeAll()
	closeBroker()
	res.RecordingBytes = dirBytes(recDir, ".cast")
	res.Recordings, res.RecordingsCapped = countCapped(recDir)
	return res, nil
}

// countCapped counts recordings, and those that ended at the size limit.
func countCapped(dir string) (n, capped int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".cast" {
			continue
		}
		n++
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil {
			off := max(0, fi.Size()-512)
			tail, _ := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
			if bytes.Contains(tail, []byte("recording stopped: size limit")) {
				capped++
			}
		}
		f.Close()
	}
	return n, capped
}

// procStatusMiB reads a kB field of /proc/self/status in MiB.
func procStatusMiB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stealTime is the machine's steal time in seconds (/proc/stat, USER_HZ
// 100), -1 if unknown.
func stealTime() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	v, err := strconv.ParseFloat(f[8], 64)
	if err != nil {
		return -1
	}
	return v / 100
}

// resetPeakRSS sets VmHWM to the current RSS (Linux: clear_refs 5), so the
// next reading is this phase's peak.
func resetPeakRSS() {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		progress("cannot reset peak RSS (%v): peak RSS is the process's", err)
	}
}
