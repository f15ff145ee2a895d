package tpm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// DefaultDevice is the kernel's TPM resource manager. It is used rather than
// /dev/tpm0 so that Bulwark shares the TPM with other users (tpm2-abrmd-less
// hosts, systemd's measurements) without handle clashes.
const DefaultDevice = "/dev/tpmrm0"

// NumPCRs is the number of PCRs of a PC Client TPM (indices 0 to 23). Which of
// them may be extended at locality 0 is for the TPM to decide: 17 to 22 refuse.
const NumPCRs = 24

// commandTimeout bounds one command on a socket TPM. PCR commands take
// milliseconds; the bound exists so that a wedged swtpm becomes an error
// rather than a hung launch.
const commandTimeout = 30 * time.Second

// ErrNoTPM is returned (wrapped) when no TPM is reachable, and by the no-TPM
// mode for operations that need one.
var ErrNoTPM = errors.New("no TPM")

// TPM is a TPM 2.0 as measured launch uses it. Implementations are safe for
// concurrent use; commands are serialised. Every method may block on the TPM.
type TPM interface {
	// ExtendPCR extends PCR index (0 to 23) of the SHA-256 bank with
	// digest: PCR := SHA-256(PCR || digest).
	ExtendPCR(index int, digest [32]byte) error
	// ReadPCRs returns the SHA-256 bank values of the given PCRs. The
	// values are one consistent snapshot: no extend happened between them.
	ReadPCRs(indices []int) (map[int][32]byte, error)
	// Info says what this TPM is and whether it is rooted in hardware.
	Info() Info
	// Close releases the device or socket. It does not stop swtpm.
	Close() error
}

// Kind is where a TPM's values come from.
type Kind int

const (
	// KindNone is the no-TPM mode.
	KindNone Kind = iota
	// KindDevice is a TPM character device (the host TPM).
	KindDevice
	// KindSwtpm is a swtpm instance reached over a socket.
	KindSwtpm
)

// Info describes a TPM for status output and audit records.
type Info struct {
	Kind Kind
	// Addr is the device path, "unix:PATH" or "tcp:HOST:PORT"; empty for
	// KindNone.
	Addr string
}

// HardwareRooted reports whether PCR values come from a TPM device. It is
// true for any character device, including a hypervisor's vTPM: the device
// is the best root this host has.
func (i Info) HardwareRooted() bool { return i.Kind == KindDevice }

func (i Info) String() string {
	switch i.Kind {
	case KindDevice:
		return "TPM device " + i.Addr + " (hardware-rooted)"
	case KindSwtpm:
		return "swtpm at " + i.Addr + " (software TPM: not hardware-rooted, for development and tests)"
	default:
		return "no TPM: measurements are logged but nothing is hardware-rooted"
	}
}

// Config selects a TPM. At most one of Socket, TCP and None may be set; when
// none is, Device (default DefaultDevice) is opened.
type Config struct {
	// Device is a TPM character device. Default: DefaultDevice.
	Device string
	// Socket is the path of swtpm's server socket
	// (swtpm socket --server type=unixio,path=SOCKET).
	Socket string
	// TCP is HOST:PORT of swtpm's server port
	// (swtpm socket --server type=tcp,port=PORT).
	TCP string
	// None selects the no-TPM mode. Default false: a missing TPM is an
	// error, never a silent downgrade.
	None bool
}

// Open opens the TPM that cfg selects. For a socket it connects at once, so
// that a swtpm that is not running is reported here rather than at the
// first extend.
func Open(cfg Config) (TPM, error) {
	set := 0
	for _, b := range []bool{cfg.Socket != "", cfg.TCP != "", cfg.None} {
		if b {
			set++
		}
	}
	if set > 1 {
		return nil, fmt.Errorf("tpm: config sets more than one of socket %q, tcp %q and none=%t", cfg.Socket, cfg.TCP, cfg.None)
	}
	switch {
	case cfg.None:
		return None, nil
	case cfg.Socket != "":
		return dialSwtpm("unix", cfg.Socket)
	case cfg.TCP != "":
		return dialSwtpm("tcp", cfg.TCP)
	}
	path := cfg.Device
	if path == "" {
		path = DefaultDevice
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tpm: device %s does not exist (%w): use swtpm or the no-TPM mode explicitly", path, ErrNoTPM)
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tpm: open device %s: %w", path, err)
	}
	return newChip(t, Info{Kind: KindDevice, Addr: path}), nil
}

func dialSwtpm(network, addr string) (TPM, error) {
	info := Info{Kind: KindSwtpm, Addr: network + ":" + addr}
	if network == "unix" {
		if _, err := os.Stat(addr); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tpm: swtpm socket %s does not exist (%w): is swtpm running with --server type=unixio,path=%s?", addr, ErrNoTPM, addr)
		}
	}
	conn, err := dialRetry(network, addr)
	if err != nil {
		return nil, fmt.Errorf("tpm: connect to swtpm at %s (%w): %w", info.Addr, ErrNoTPM, err)
	}
	return newChip(&streamTransport{conn: conn}, info), nil
}

// None is the no-TPM mode. Its extends succeed and are dropped, so measured
// launch can run and keep its event log; its reads fail with ErrNoTPM because
// there is no value to report.
var None TPM = noTPM{}

type noTPM struct{}

func (noTPM) ExtendPCR(index int, _ [32]byte) error { return checkIndex(index) }

func (noTPM) ReadPCRs(indices []int) (map[int][32]byte, error) {
	return nil, fmt.Errorf("tpm: read PCRs %v: %w (nothing is hardware-rooted)", indices, ErrNoTPM)
}

func (noTPM) Info() Info   { return Info{Kind: KindNone} }
func (noTPM) Close() error { return nil }

// InfoOf is t.Info(), with a nil TPM reported as the no-TPM mode.
func InfoOf(t TPM) Info {
	if t == nil {
		return Info{Kind: KindNone}
	}
	return t.Info()
}

func checkIndex(index int) error {
	if index < 0 || index >= NumPCRs {
		return fmt.Errorf("tpm: PCR index %d out of range 0..%d", index, NumPCRs-1)
	}
	return nil
}

var _ transport.TPM = (*streamTransport)(nil)

// dialRetryFor is how long a refused connection to swtpm is retried: its
// socket file appears at bind(), before listen(), and its listen backlog is
// short (it serves one connection at a time), so a swtpm that was just
// started, or is still closing a previous client, refuses for a moment.
const dialRetryFor = 2 * time.Second

func dialRetry(network, addr string) (net.Conn, error) {
	deadline := time.Now().Add(dialRetryFor)
	for {
		conn, err := net.DialTimeout(network, addr, commandTimeout)
		if err == nil {
			return conn, nil
		}
		if !(errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EAGAIN)) || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
