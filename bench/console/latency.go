package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/console"
)

type dist struct {
	N        int     `json:"n"`
	MedianUS float64 `json:"median_us"`
	P90US    float64 `json:"p90_us"`
	P99US    float64 `json:"p99_us"`
	MinUS    float64 `json:"min_us"`
	MaxUS    float64 `json:"max_us"`
	MeanUS   float64 `json:"mean_us"`
}

type latency struct {
	Direct         dist    `json:"direct"`
	Broker         dist    `json:"broker"`
	AddedMedianUS  float64 `json:"added_median_us"`
	AddedP90US     float64 `json:"added_p90_us"`
	AddedP99US     float64 `json:"added_p99_us"`
	Recording      bool    `json:"recording"`
	RecordingBytes int64   `json:"recording_bytes"`
	ConsoleLog     bool    `json:"console_log"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// quantile is the nearest-rank quantile of sorted s.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func summarize(s []time.Duration) dist {
	s = slices.Clone(s)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return dist{N: len(s), MedianUS: us(quantile(s, 0.5)), P90US: us(quantile(s, 0.9)), P99US: us(quantile(s, 0.99)),
		MinUS: us(s[0]), MaxUS: us(s[len(s)-1]), MeanUS: us(sum / time.Duration(len(s)))}
}

// directRTT writes one byte to the echo socket and reads it back.
type directRTT struct {
	c   net.Conn
	buf [1]byte
}

func (d *directRTT) once(b byte) (time.Duration, error) {
	d.c.SetDeadline(time.Now().Add(5 * time.Second))
	t0 := time.Now()
	if _, err := d.c.Write([]byte{b}); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(d.c, d.buf[:]); err != nil {
		return 0, err
	}
	el := time.Since(t0)
	if d.buf[0] != b {
		return 0, fmt.Errorf("direct: echoed %q, sent %q", d.buf[0], b)
	}
	return el, nil
}

// brokerRTT sends one keystroke through the WebSocket and waits for its
// echo to come back as console output.
type brokerRTT struct {
	con *client.Console
	ctx context.Context
}

func (r *brokerRTT) once(b byte) (time.Duration, error) {
	t0 := time.Now()
	if err := r.con.Send(r.ctx, []byte{b}); err != nil {
		return 0, err
	}
	for {
		out, ctl, err := r.con.Read(r.ctx)
		if err != nil {
			return 0, err
		}
		if ctl != nil {
			if ctl.Type == "closed" {
				return 0, fmt.Errorf("broker: session closed: %s", ctl.Reason)
			}
			continue // status, notice
		}
		if len(out) == 0 {
			continue
		}
		el := time.Since(t0)
		if len(out) != 1 || out[0] != b {
			return 0, fmt.Errorf("broker: echoed %q, sent %q", out, b)
		}
		return el, nil
	}
}

// measureLatency runs the keystroke-to-echo comparison: the same echo
// endpoint reached directly and through client → WebSocket → broker →
// serial connection → pump → broker → WebSocket → client.
func measureLatency(cfg config, tmp string) (latency, error) {
	res := latency{Recording: true, ConsoleLog: cfg.consoleLog}
	dir := filepath.Join(tmp, "latency")
	recDir := filepath.Join(dir, "recordings")
	if err := os.MkdirAll(recDir, 0o700); err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	echo, err := startEcho(filepath.Join(dir, "serial.sock"))
	if err != nil {
		return res, err
	}
	defer echo.Close()

	// Direct client.
	dc, err := net.Dial("unix", filepath.Join(dir, "serial.sock"))
	if err != nil {
		return res, err
	}
	defer dc.Close()
	direct := &directRTT{c: dc}

	// The daemon's side: a serial connection, pumped into the broker.
	serial, err := net.Dial("unix", filepath.Join(dir, "serial.sock"))
	if err != nil {
		return res, err
	}
	defer serial.Close()
	in := &serialInput{}
	in.set("bench", serial)
	b, err := console.New(console.Config{RecordDir: recDir}, in, nil)
	if err != nil {
		return res, err
	}
	brokerClosed := false
	closeBroker := func() {
		if !brokerClosed {
			brokerClosed = true
			withTimeout(10*time.Second, b.Close)
		}
	}
	defer closeBroker()
	var lg io.WriteCloser
	if cfg.consoleLog {
		l, err := openConsoleLog(dir)
		if err != nil {
			return res, err
		}
		lg = l
		defer lg.Close()
	}
	pumpDone := make(chan error, 1)
	go func() {
		var w io.Writer
		if lg != nil {
			w = lg
		}
		pumpDone <- pump("bench", serial, b, w)
	}()

	srv, err := startAPI(filepath.Join(dir, "api.sock"), b)
	if err != nil {
		return res, err
	}
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dctx, dcancel := ctxFor(10 * time.Second)
	con, err := client.New(srv.sock).DialConsole(dctx, "bench", client.ConsoleOptions{})
	dcancel()
	if err != nil {
		return res, fmt.Errorf("dial console: %w", err)
	}
	defer withTimeout(5*time.Second, func() { con.Close() })
	// Wait for the admission status: the session holds the console.
	for {
		_, ctl, err := con.Read(ctx)
		if err != nil {
			return res, err
		}
		if ctl != nil && ctl.Type == "status" && ctl.State == "holding" {
			break
		}
		if ctl != nil && ctl.Type == "closed" {
			return res, errors.New("console refused: " + ctl.Reason)
		}
	}
	broker := &brokerRTT{con: con, ctx: ctx}

	key := byte('a')
	next := func() byte {
		key++
		if key > 'z' {
			key = 'a'
		}
		return key
	}
	for range cfg.warmup {
		if _, err := direct.once(next()); err != nil {
			return res, err
		}
		if _, err := broker.once(next()); err != nil {
			return res, err
		}
	}
	var ds, bs []time.Duration
	for blk := range cfg.blocks {
		// Split n as evenly as possible over the blocks.
		k := (blk+1)*cfg.n/cfg.blocks - blk*cfg.n/cfg.blocks
		for range k {
			d, err := direct.once(next())
			if err != nil {
				return res, err
			}
			ds = append(ds, d)
		}
		for range k {
			d, err := broker.once(next())
			if err != nil {
				return res, err
			}
			bs = append(bs, d)
		}
	}
	res.Direct, res.Broker = summarize(ds), summarize(bs)
	res.AddedMedianUS = res.Broker.MedianUS - res.Direct.MedianUS
	res.AddedP90US = res.Broker.P90US - res.Direct.P90US
	res.AddedP99US = res.Broker.P99US - res.Direct.P99US

	// End the session and the broker so the recording is flushed, then
	// weigh it.
	withTimeout(5*time.Second, func() { con.Close() })
	closeBroker()
	res.RecordingBytes = dirBytes(recDir, ".cast")
	serial.Close()
	<-pumpDone
	return res, nil
}

// dirBytes sums the sizes of dir's files ending in suffix.
func dirBytes(dir, suffix string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && filepath.Ext(e.Name()) == suffix {
			n += fi.Size()
		}
	}
	return n
}
