//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// legResult is one measured path.
type legResult struct {
	Path      string        `json:"path"`
	Sent      uint64        `json:"sent"`
	SendErrs  uint64        `json:"send_errors"`
	Delivered uint64        `json:"delivered"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Notes     []string      `json:"notes"`
}

func (r legResult) rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Delivered) / r.Elapsed.Seconds()
}

func (r legResult) lossPct() float64 {
	if r.Sent == 0 {
		return 0
	}
	return 100 * (float64(r.Sent) - float64(r.Delivered)) / float64(r.Sent)
}

// helperCmd runs this binary with a helper subcommand, inside netns when set.
func helperCmd(ctx context.Context, netns string, args ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if netns != "" {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns, self}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, self, args...)
	}
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}

// receiver is a running _recv helper.
type receiver struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startReceiver(ctx context.Context, netns string, args ...string) (*receiver, error) {
	cmd, err := helperCmd(ctx, netns, append([]string{"_recv"}, args...)...)
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &receiver{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
	}()
	if !r.wait("ready", 10*time.Second) {
		r.kill()
		return nil, errors.New("receiver did not start")
	}
	return r, nil
}

// wait waits for a line that starts with prefix and returns whether it came.
func (r *receiver) wait(prefix string, d time.Duration) bool {
	_, ok := r.waitLine(prefix, d)
	return ok
}

func (r *receiver) waitLine(prefix string, d time.Duration) (string, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				return "", false
			}
			if strings.HasPrefix(l, prefix) {
				return l, true
			}
		case <-t.C:
			return "", false
		}
	}
}

// finish stops the receiver and returns its counts.
func (r *receiver) finish() (recvResult, error) {
	var res recvResult
	r.stdin.Close()
	l, ok := r.waitLine("result ", 10*time.Second)
	werr := r.cmd.Wait()
	if !ok {
		return res, fmt.Errorf("receiver gave no result (%v)", werr)
	}
	return res, json.Unmarshal([]byte(strings.TrimPrefix(l, "result ")), &res)
}

func (r *receiver) kill() {
	if r.cmd.Process != nil {
		r.cmd.Process.Kill()
	}
	r.cmd.Wait()
}

// measure runs one leg's traffic: warm-up until the receiver has seen a
// frame (and, with a reply, the flow is established), then dur of sending,
// then a short drain.
func measure(ctx context.Context, rcv *receiver, sendNS string, sendArgs []string, dur time.Duration) (legResult, recvResult, error) {
	var res legResult
	warmed := false
	for range 50 {
		cmd, err := helperCmd(ctx, sendNS, append(append([]string{"_send"}, sendArgs...), "-warm")...)
		if err != nil {
			return res, recvResult{}, err
		}
		if err := cmd.Run(); err != nil {
			return res, recvResult{}, fmt.Errorf("warm-up sender: %w", err)
		}
		if rcv.wait("warm", 100*time.Millisecond) {
			warmed = true
			break
		}
	}
	if !warmed {
		return res, recvResult{}, errors.New("no warm-up frame reached the receiver")
	}
	time.Sleep(100 * time.Millisecond) // let the reply, if any, cross the path
	cmd, err := helperCmd(ctx, sendNS, append(append([]string{"_send"}, sendArgs...), "-duration", dur.String())...)
	if err != nil {
		return res, recvResult{}, err
	}
	out, err := cmd.Output()
	if err != nil {
		return res, recvResult{}, fmt.Errorf("sender: %w", err)
	}
	var sr sendResult
	line := strings.TrimSpace(string(out))
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "result ")), &sr); err != nil {
		return res, recvResult{}, fmt.Errorf("sender output %q: %w", line, err)
	}
	time.Sleep(300 * time.Millisecond) // frames still in queues
	rr, err := rcv.finish()
	if err != nil {
		return res, rr, err
	}
	res.Sent, res.SendErrs, res.Elapsed, res.Delivered = sr.Sent, sr.Errors, time.Duration(sr.ElapsedNS), rr.Received
	return res, rr, nil
}
