package measure

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
	"github.com/bulwark-project/bulwark/internal/tpm"
)

// The PCRs Bulwark extends (see the package doc).
const (
	PCRHost   = 11
	PCRLaunch = 12
)

// pcrs are the PCRs this package owns, checked against the log at start:
// all of them are explained by the log, or all are at their reset value.
var pcrs = []int{PCRHost, PCRLaunch, PCRRuntime}

// Implementation limits.
const (
	// MaxHashedFile bounds a file hashed from a descriptor: a kernel or an
	// initrd, not a disk image.
	MaxHashedFile = 1 << 30
	// MaxLogSize bounds the log read back at start and served by the API.
	MaxLogSize = 64 << 20
)

// LogFile is the log's name inside the directory given to Open.
const LogFile = "eventlog.bin"

// ErrPCRsNotFresh is returned by Open when the log cannot explain the PCRs
// and they are not at their reset value.
var ErrPCRsNotFresh = errors.New("PCRs are not at their reset value and no valid event log explains them")

// ErrTooLarge is returned (wrapped) for a file over MaxHashedFile.
var ErrTooLarge = errors.New("file too large to hash")

// Measurer extends PCRs and keeps the event log. It is safe for concurrent
// use; measurements are serialised so that PCR order and log order agree.
type Measurer struct {
	tpm  tpm.TPM
	path string
	log  *slog.Logger

	mu sync.Mutex
	f  *os.File
	w  *eventlog.Writer
}

// Open opens or starts the event log in dir (created root-only 0700) by the
// rule in the package doc. The Measurer does not own t: Close leaves it open.
func Open(dir string, t tpm.TPM, log *slog.Logger) (*Measurer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	m := &Measurer{tpm: t, path: filepath.Join(dir, LogFile), log: log}
	keep, err := m.checkExisting()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(m.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("measure: open event log: %w", err)
	}
	m.f = f
	if keep {
		m.w = eventlog.NewAppender(f)
		return m, nil
	}
	if m.w, err = eventlog.NewWriter(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("measure: %s: %w", m.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("measure: %s: %w", m.path, err)
	}
	return m, nil
}

// checkExisting applies the start-up rule: true to keep appending to the
// existing log, false to start a new one (any old log renamed aside).
func (m *Measurer) checkExisting() (bool, error) {
	raw, err := readBounded(m.path)
	exists := !errors.Is(err, os.ErrNotExist)
	if exists && err != nil {
		return false, fmt.Errorf("measure: read event log: %w", err)
	}
	noTPM := tpm.InfoOf(m.tpm).Kind == tpm.KindNone
	var cur map[int][32]byte
	if !noTPM {
		if cur, err = m.tpm.ReadPCRs(pcrs); err != nil {
			return false, fmt.Errorf("measure: read PCRs %v: %w", pcrs, err)
		}
	}
	if exists {
		why := ""
		events, perr := eventlog.Parse(raw)
		switch {
		case perr != nil:
			why = perr.Error()
		case !noTPM:
			why = mismatch(eventlog.Replay(events), cur)
		}
		if why == "" {
			return true, nil
		}
		aside := fmt.Sprintf("%s.broken-%d", m.path, time.Now().UnixNano())
		if err := os.Rename(m.path, aside); err != nil {
			return false, fmt.Errorf("measure: move invalid event log aside: %w", err)
		}
		m.log.Error("measured launch: the event log does not explain the TPM's PCRs; it was moved aside", "reason", why, "moved_to", aside)
	}
	for _, i := range pcrs {
		if v := cur[i]; v != ([32]byte{}) {
			return false, fmt.Errorf("measure: PCR %d is %x: %w (reboot the host, or restart swtpm with fresh state)", i, v, ErrPCRsNotFresh)
		}
	}
	return false, nil
}

// mismatch says how replayed and the TPM's values differ on Bulwark's
// PCRs, or "" when they agree.
func mismatch(replayed map[uint32][32]byte, cur map[int][32]byte) string {
	for _, i := range pcrs {
		if replayed[uint32(i)] != cur[i] {
			return fmt.Sprintf("PCR %d: log replays to %x, TPM holds %x", i, replayed[uint32(i)], cur[i])
		}
	}
	return ""
}

func readBounded(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxLogSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxLogSize {
		return nil, fmt.Errorf("%s is over %d bytes", path, MaxLogSize)
	}
	return b, nil
}

// Close closes the log file.
func (m *Measurer) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.f.Close()
}

// TPMInfo says which TPM the measurements go to.
func (m *Measurer) TPMInfo() tpm.Info { return tpm.InfoOf(m.tpm) }

// Extend measures one thing whose SHA-256 is digest: it extends pcr, then
// appends and syncs the record (see the package doc for why that order).
func (m *Measurer) Extend(pcr int, digest [32]byte, data string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.tpm.ExtendPCR(pcr, digest); err != nil {
		return fmt.Errorf("measure: extend PCR %d (%s): %w", pcr, data, err)
	}
	if err := m.w.Append(eventlog.Event{PCR: uint32(pcr), Type: eventlog.EventIPL, Digest: digest, Data: []byte(data)}); err != nil {
		return fmt.Errorf("measure: PCR %d extended but not logged (%s): %w", pcr, data, err)
	}
	if err := m.f.Sync(); err != nil {
		return fmt.Errorf("measure: sync event log: %w", err)
	}
	return nil
}

// EventLog returns the raw log as it is on disk.
func (m *Measurer) EventLog() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return readBounded(m.path)
}

// Status is what the attestation API reports.
type Status struct {
	TPM            tpm.Info
	HardwareRooted bool
	// PCRs are the TPM's values of PCR 11, 12 and 13 (nil in the no-TPM
	// mode).
	PCRs map[int][32]byte
	// Replayed are the values the log replays to.
	Replayed map[int][32]byte
	// Agree is true when PCRs equal Replayed; false in the no-TPM mode.
	Agree bool
	// Mismatch says why they do not agree ("" when they do).
	Mismatch string
}

// Status reads the PCRs and replays the log, as one snapshot: no
// measurement happens in between.
func (m *Measurer) Status() (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := tpm.InfoOf(m.tpm)
	st := Status{TPM: info, HardwareRooted: info.HardwareRooted(), Replayed: map[int][32]byte{}}
	raw, err := readBounded(m.path)
	if err != nil {
		return st, fmt.Errorf("measure: read event log: %w", err)
	}
	events, err := eventlog.Parse(raw)
	if err != nil {
		return st, fmt.Errorf("measure: %w", err)
	}
	rep := eventlog.Replay(events)
	for _, i := range pcrs {
		st.Replayed[i] = rep[uint32(i)]
	}
	if info.Kind == tpm.KindNone {
		st.Mismatch = "no TPM: nothing to compare the log with"
		return st, nil
	}
	if st.PCRs, err = m.tpm.ReadPCRs(pcrs); err != nil {
		return st, fmt.Errorf("measure: read PCRs: %w", err)
	}
	st.Mismatch = mismatch(rep, st.PCRs)
	st.Agree = st.Mismatch == ""
	return st, nil
}

// HashFile returns the SHA-256 of f's contents and its size, reading with
// ReadAt so that f's offset is untouched (the descriptor is then handed to
// QEMU as it was). Files over MaxHashedFile are refused.
func HashFile(f *os.File) ([32]byte, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return [32]byte{}, 0, err
	}
	if !fi.Mode().IsRegular() {
		return [32]byte{}, 0, fmt.Errorf("%s is not a regular file", f.Name())
	}
	if fi.Size() > MaxHashedFile {
		return [32]byte{}, 0, fmt.Errorf("%s: %d bytes: %w (at most %d)", f.Name(), fi.Size(), ErrTooLarge, MaxHashedFile)
	}
	h := sha256.New()
	// One byte past the size seen: a file that grew meanwhile is refused
	// rather than measured in part.
	n, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size()+1))
	if err != nil {
		return [32]byte{}, 0, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if n != fi.Size() {
		return [32]byte{}, 0, fmt.Errorf("%s changed size while hashed (%d, then %d bytes)", f.Name(), fi.Size(), n)
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d, n, nil
}

// hashPath hashes the file at path (/proc/self/exe is a link, so links are
// followed).
func hashPath(path string) ([32]byte, int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return [32]byte{}, 0, err
	}
	defer f.Close()
	return HashFile(f)
}

// quote keeps event data on one line whatever a name holds.
func quote(s string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%q", s)
	return b.String()
}
