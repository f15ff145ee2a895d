// Command console benchmarks Bulwark's console data path: the broker
// (internal/console), the WebSocket handler the daemon serves it with
// (api.ServeConsoleWS) and the Go client (client.DialConsole), all in one
// process over real Unix sockets.
//
// In one run it measures:
//
//  1. keystroke-to-echo latency: a Unix-socket echo server stands in for the
//     guest's tty; one client writes a byte to it directly and reads the
//     echo, another sends the byte through client → WebSocket → broker →
//     serial socket → echo → pump → broker → WebSocket → client. The two are
//     sampled in alternating blocks; the difference is what the path adds.
//  2. sustained output with many consoles: one broker, -consoles VMs, a
//     producer per VM calling broker.Output with 4 KiB of text as fast as it
//     can, one WebSocket client per VM reading everything; then the same
//     with -stalled clients that never read. It reports produced and
//     delivered MB/s, the drop markers, the recording bytes and the peak RSS,
//     against a raw Unix-socket copy measured in the same run. The two
//     variants run A B B A so drift falls on both; -yield makes producers
//     yield the CPU after each chunk instead of spinning.
//
// It is a benchmark, not a test: it reports numbers and fails only when
// something broke. No root, no QEMU.
//
//	go run ./bench/console
//	go run ./bench/console -n 2000 -consoles 50 -seconds 5 -json
//
// See docs/benchmarks.md for what is measured and the caveats.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/bench/internal/host"
)

type config struct {
	n, warmup, blocks int
	consoles, stalled int
	seconds           float64
	chunk             int
	consoleLog        bool
	jsonOut           bool
	timeout           time.Duration
	keep              bool
	cpuProfile        string
	yield             bool
}

func main() {
	os.Exit(run())
}

func run() int {
	var cfg config
	flag.IntVar(&cfg.n, "n", 2000, "latency samples of each kind (direct and through the broker)")
	flag.IntVar(&cfg.warmup, "warmup", 200, "untimed round trips of each kind first")
	flag.IntVar(&cfg.blocks, "blocks", 10, "latency samples are taken in this many alternating blocks (direct, broker, direct, ...)")
	flag.IntVar(&cfg.consoles, "consoles", 50, "concurrent consoles (VMs) in the throughput phase")
	flag.IntVar(&cfg.stalled, "stalled", 5, "of those, clients that never read in the stalled variant; the variants run all-reading, stalled, stalled, all-reading (0: only one all-reading run)")
	flag.Float64Var(&cfg.seconds, "seconds", 5, "duration of each throughput measurement (broker variants and the raw socket copy)")
	flag.IntVar(&cfg.chunk, "chunk", 4096, "bytes per broker.Output call and per raw socket write")
	flag.BoolVar(&cfg.consoleLog, "console-log", false, "latency: also write each chunk to a rotating console log before broker.Output, as the manager's pump does")
	flag.BoolVar(&cfg.jsonOut, "json", false, "print the results as JSON instead of the text report")
	flag.DurationVar(&cfg.timeout, "timeout", 3*time.Minute, "give up (and clean up) after this long")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (recordings, sockets)")
	flag.BoolVar(&cfg.yield, "yield", false, "throughput: producers yield the CPU after each chunk (as a pump blocked on its socket read would) instead of spinning")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the throughput phases to this file")
	flag.Parse()
	if cfg.n < 1 || cfg.warmup < 0 || cfg.blocks < 1 || cfg.consoles < 1 || cfg.stalled < 0 ||
		cfg.stalled >= cfg.consoles || cfg.seconds <= 0 || cfg.chunk < 1 || cfg.chunk > 1<<20 {
		fmt.Fprintln(os.Stderr, "console: need -n ≥ 1, -warmup ≥ 0, -blocks ≥ 1, -consoles ≥ 1, 0 ≤ -stalled < -consoles, -seconds > 0, 1 ≤ -chunk ≤ 1 MiB")
		return 2
	}
	if cfg.blocks > cfg.n {
		cfg.blocks = cfg.n
	}

	tmp, err := os.MkdirTemp("", "bulwark-bench-console-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "console:", err)
		return 1
	}
	cleanup := func() {
		if cfg.keep {
			progress("kept %s", tmp)
			return
		}
		os.RemoveAll(tmp)
	}
	defer cleanup()
	// Bound the run: Ctrl-C or the timeout still removes the directory.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sig:
			progress("%v: cleaning up", s)
		case <-time.After(cfg.timeout):
			progress("timeout after %s: cleaning up", cfg.timeout)
		}
		cleanup()
		os.Exit(1)
	}()

	res := results{Machine: describeMachine(), Config: cfgView(cfg)}
	start := time.Now()

	progress("latency: %d warm-up + %d samples of each kind", cfg.warmup, cfg.n)
	lat, err := measureLatency(cfg, tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "console: latency:", err)
		return 1
	}
	res.Latency = lat

	progress("raw unix socket copy, %gs", cfg.seconds)
	raw, err := measureRaw(cfg, tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "console: raw copy:", err)
		return 1
	}
	res.Raw = raw

	// With stalled clients the two variants run A B B A, so drift on the
	// host falls on both alike.
	variants := []int{0}
	if cfg.stalled > 0 {
		variants = []int{0, cfg.stalled, cfg.stalled, 0}
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "console:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "console:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	for _, st := range variants {
		progress("throughput: %d consoles, %d not reading, %gs", cfg.consoles, st, cfg.seconds)
		tp, err := measureThroughput(cfg, tmp, st)
		tp.Run = len(res.Throughput) + 1
		if err != nil {
			fmt.Fprintln(os.Stderr, "console: throughput:", err)
			return 1
		}
		if raw.MBps > 0 {
			tp.DeliveredVsRaw = tp.DeliveredMBps / raw.MBps
			tp.ProducedVsRaw = tp.ProducedMBps / raw.MBps
		}
		res.Throughput = append(res.Throughput, tp)
	}
	res.Machine.LoadAfter = host.Loadavg()
	res.WallSeconds = time.Since(start).Seconds()

	if cfg.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, "console:", err)
			return 1
		}
		return 0
	}
	printReport(os.Stdout, res)
	return 0
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench/console: "+format+"\n", a...)
}

type machine struct {
	NProc      int    `json:"nproc"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
}

func describeMachine() machine {
	return machine{NProc: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
		LoadBefore: host.Loadavg(), CPUModel: host.CPUModel(), Kernel: host.Kernel()}
}

type configView struct {
	N          int     `json:"n"`
	Warmup     int     `json:"warmup"`
	Blocks     int     `json:"blocks"`
	Consoles   int     `json:"consoles"`
	Stalled    int     `json:"stalled"`
	Seconds    float64 `json:"seconds"`
	Chunk      int     `json:"chunk_bytes"`
	ConsoleLog bool    `json:"console_log"`
	Yield      bool    `json:"yield"`
}

func cfgView(c config) configView {
	return configView{N: c.n, Warmup: c.warmup, Blocks: c.blocks, Consoles: c.consoles, Stalled: c.stalled,
		Seconds: c.seconds, Chunk: c.chunk, ConsoleLog: c.consoleLog, Yield: c.yield}
}

type results struct {
	Machine     machine      `json:"machine"`
	Config      configView   `json:"config"`
	Latency     latency      `json:"latency"`
	Raw         rawCopy      `json:"raw_unix_copy"`
	Throughput  []throughput `json:"throughput"`
	WallSeconds float64      `json:"wall_seconds"`
}
