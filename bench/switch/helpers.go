//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The traffic helpers run as child processes of the benchmark (inside
// "ip netns exec" for the bridge path). Both paths use the same helpers and
// the same frames; only the socket differs: a Unix datagram socket for a
// Bulwark port (what QEMU uses), an AF_PACKET socket on a veth for the bridge.

// transport names the socket a helper uses.
type transport struct {
	iface      string // AF_PACKET on this interface
	unixBind   string // or AF_UNIX datagram, bound here
	unixTarget string // and (sender) connected to this
}

func (t *transport) flags(fs *flag.FlagSet) {
	fs.StringVar(&t.iface, "if", "", "send/receive raw frames on this interface (AF_PACKET)")
	fs.StringVar(&t.unixBind, "unix-bind", "", "Unix datagram socket path to bind")
	fs.StringVar(&t.unixTarget, "unix-connect", "", "Unix datagram socket path to send to")
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// open returns a blocking socket. A packet socket opened for sending only is
// bound with protocol 0 so that it receives nothing.
func (t *transport) open(receive bool) (int, error) {
	if t.iface != "" {
		ifi, err := net.InterfaceByName(t.iface)
		if err != nil {
			return -1, err
		}
		proto := 0
		if receive {
			proto = int(htons(unix.ETH_P_ALL))
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return -1, fmt.Errorf("AF_PACKET socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("bind %s: %w", t.iface, err)
		}
		if receive {
			// As much room as a Bulwark port socket gets (4 MiB).
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
		}
		return fd, nil
	}
	if t.unixBind == "" {
		return -1, errors.New("need -if or -unix-bind")
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	os.Remove(t.unixBind)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: t.unixBind}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", t.unixBind, err)
	}
	if t.unixTarget != "" {
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: t.unixTarget}); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("connect %s: %w", t.unixTarget, err)
		}
	}
	return fd, nil
}

// sendResult is what the sender reports.
type sendResult struct {
	Sent      uint64 `json:"sent"`
	Errors    uint64 `json:"errors"`
	ElapsedNS int64  `json:"elapsed_ns"`
}

// recvResult is what the receiver reports.
type recvResult struct {
	Received uint64 `json:"received"` // measurement frames
	Other    uint64 `json:"other"`    // anything else read from the socket
	// KernelDrops is, for a packet socket, the frames the kernel dropped
	// because the socket's queue was full (PACKET_STATISTICS).
	KernelDrops uint64 `json:"kernel_drops"`
}

func emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Printf("result %s\n", b)
}

// helperSend sends one warm-up frame (-warm) or measurement frames back to
// back for -duration, one write(2) per frame, and prints a sendResult. The
// socket is blocking: a Unix datagram sender waits while the switch's queue
// is full; a packet socket on a veth never waits (the kernel forwards the
// frame through the bridge in the sender's own context).
func helperSend(args []string) int {
	fs := flag.NewFlagSet("_send", flag.ExitOnError)
	var t transport
	t.flags(fs)
	warm := fs.Bool("warm", false, "send one warm-up frame and exit")
	dur := fs.Duration("duration", 5*time.Second, "how long to send")
	fs.Parse(args)
	fd, err := t.open(false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "send:", err)
		return 1
	}
	defer unix.Close(fd)
	if *warm {
		if _, err := unix.Write(fd, frame(markWarm)); err != nil {
			fmt.Fprintln(os.Stderr, "send warm-up frame:", err)
			return 1
		}
		return 0
	}
	// Never block for long: a stuck switch must not hang the benchmark.
	tv := unix.NsecToTimeval(int64(time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	b := frame(markMeasure)
	var stop atomic.Bool
	var r sendResult
	start := time.Now()
	time.AfterFunc(*dur, func() { stop.Store(true) })
	for !stop.Load() {
		if _, err := unix.Write(fd, b); err != nil {
			// EINTR: a blocked send (SO_SNDTIMEO set) interrupted by the Go
			// runtime's preemption signal; the frame was not sent, retry.
			if err != unix.EINTR {
				r.Errors++
			}
			continue
		}
		r.Sent++
	}
	r.ElapsedNS = int64(time.Since(start))
	emit(r)
	return 0
}

// helperRecv counts measurement frames until its standard input closes, then
// prints a recvResult. It prints "ready" once its socket is bound and "warm"
// when the first warm-up frame arrives (after answering it with one reply
// frame when -reply is set).
func helperRecv(args []string) int {
	fs := flag.NewFlagSet("_recv", flag.ExitOnError)
	var t transport
	t.flags(fs)
	reply := fs.Bool("reply", false, "answer the first warm-up frame with one reply frame")
	fs.Parse(args)
	fd, err := t.open(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "recv:", err)
		return 1
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var stop atomic.Bool
	go func() {
		bufio.NewReader(os.Stdin).WriteTo(discard{})
		stop.Store(true)
	}()
	out := bufio.NewWriter(os.Stdout)
	out.WriteString("ready\n")
	out.Flush()
	var r recvResult
	warmed := false
	buf := make([]byte, 65536)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			if stop.Load() {
				break
			}
			continue // EAGAIN (timeout) or EINTR
		}
		switch kindOf(buf[:n]) {
		case markMeasure:
			r.Received++
		case markWarm:
			if !warmed {
				warmed = true
				if *reply {
					if _, err := unix.Write(fd, frame(markReply)); err != nil {
						fmt.Fprintln(os.Stderr, "recv: reply:", err)
					}
				}
				out.WriteString("warm\n")
				out.Flush()
			}
		default:
			r.Other++
		}
	}
	if t.iface != "" {
		if st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			r.KernelDrops = uint64(st.Drops)
		}
	}
	emit(r)
	return 0
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
