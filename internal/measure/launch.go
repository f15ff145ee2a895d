package measure

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vm"
)

// DiskLayer identifies one opened layer of a volume disk: Bulwark does not
// hash disk images at launch (they are large, and writable ones change),
// so a layer is recorded by its identity, which the event data says, and a
// read-only layer also by the content digest storage recorded for it.
type DiskLayer struct {
	Format   string
	ReadOnly bool
	Dev, Ino uint64
	Size     int64
	// ContentSHA256 is, for a read-only layer, the SHA-256 (64 lower-case
	// hex digits) of the file's bytes from the storage records (import
	// with a checked digest, never opened for writing since); "" for
	// none. A writable layer must not have one.
	ContentSHA256 string
}

// Launch is one VM start being measured into PCR 12.
type Launch struct {
	m    *Measurer
	name string

	mu  sync.Mutex
	got map[string]bool // roles measured from descriptors
}

// BeginLaunch measures what a VM start is made of apart from its boot
// files: the definition, the command line and each disk (volumes[i], if
// set, is disk i's opened chain, base first), each disk's identity event
// followed by its read-only layers' content digests. The kernel and initrd
// follow through Launch.Measure, from the descriptors the backend passes
// to QEMU.
func (m *Measurer) BeginLaunch(spec vm.Spec, volumes [][]DiskLayer) (*Launch, error) {
	def, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("measure: vm %q: definition: %w", spec.Name, err)
	}
	vmq := quote(spec.Name)
	if err := m.Extend(PCRLaunch, sha256.Sum256(def), fmt.Sprintf("vm-definition vm=%s digest-of=canonical-json", vmq)); err != nil {
		return nil, err
	}
	if err := m.Extend(PCRLaunch, sha256.Sum256([]byte(spec.Cmdline)), fmt.Sprintf("vm-cmdline vm=%s cmdline=%s", vmq, trim(quote(spec.Cmdline)))); err != nil {
		return nil, err
	}
	for i, d := range spec.Disks {
		var ident string
		if d.Volume != "" || (i < len(volumes) && len(volumes[i]) > 0) {
			var b strings.Builder
			fmt.Fprintf(&b, "volume=%s ro=%t", quote(d.Volume), d.ReadOnly)
			if i < len(volumes) {
				for j, l := range volumes[i] {
					fmt.Fprintf(&b, " layer%d=%s,ro=%t,dev=%d,ino=%d,size=%d", j, l.Format, l.ReadOnly, l.Dev, l.Ino, l.Size)
				}
			}
			ident = b.String()
		} else {
			ident = fmt.Sprintf("path=%s ro=%t", quote(d.Path), d.ReadOnly)
		}
		data := fmt.Sprintf("vm-disk vm=%s index=%d digest-of=identity %s", vmq, i, ident)
		if err := m.Extend(PCRLaunch, sha256.Sum256([]byte(ident)), trim(data)); err != nil {
			return nil, err
		}
		if i < len(volumes) {
			if err := m.measureContents(vmq, i, volumes[i]); err != nil {
				return nil, fmt.Errorf("measure: vm %q: disks[%d]: %w", spec.Name, i, err)
			}
		}
	}
	return &Launch{m: m, name: spec.Name, got: map[string]bool{}}, nil
}

// measureContents extends PCR 12 with the recorded content digest of each
// read-only layer of disk i that has one, base first:
// vm-disk-content vm="NAME" index=I layer=J digest-of=content.
func (m *Measurer) measureContents(vmq string, i int, layers []DiskLayer) error {
	for j, l := range layers {
		if l.ContentSHA256 == "" {
			continue
		}
		if !l.ReadOnly {
			return fmt.Errorf("layer %d is writable: a content digest cannot describe it", j)
		}
		d, err := parseDigest(l.ContentSHA256)
		if err != nil {
			return fmt.Errorf("layer %d: %w", j, err)
		}
		if err := m.Extend(PCRLaunch, d, fmt.Sprintf("vm-disk-content vm=%s index=%d layer=%d digest-of=content", vmq, i, j)); err != nil {
			return err
		}
	}
	return nil
}

// parseDigest decodes a SHA-256 written as 64 lower-case hex digits.
func parseDigest(s string) ([32]byte, error) {
	var d [32]byte
	if len(s) != 64 || strings.ToLower(s) != s {
		return d, fmt.Errorf("content digest %q is not 64 lower-case hex digits", trim(s))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("content digest %q is not 64 lower-case hex digits", trim(s))
	}
	return d, nil
}

// Measure hashes f (a boot file the backend is about to pass to QEMU, by
// role: "kernel", "initrd") without moving its offset, and extends PCR 12.
// Its signature is hv.LaunchConfig.Measure's.
func (l *Launch) Measure(role string, f *os.File) error {
	d, n, err := HashFile(f)
	if err != nil {
		return fmt.Errorf("measure: vm %q: %s: %w", l.name, role, err)
	}
	if err := l.m.Extend(PCRLaunch, d, fmt.Sprintf("vm-%s vm=%s size=%d file=%s", role, quote(l.name), n, trim(quote(f.Name())))); err != nil {
		return err
	}
	l.mu.Lock()
	l.got[role] = true
	l.mu.Unlock()
	return nil
}

// Measured reports whether role was measured through Measure.
func (l *Launch) Measured(role string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got[role]
}

// trim keeps event data within the writer's bound; the digest, not the
// description, is what is bound to the PCR.
func trim(s string) string {
	const max = 900
	if len(s) <= max {
		return s
	}
	for i := max; i > max-4; i-- { // cut on a UTF-8 boundary
		if s[i]&0xC0 != 0x80 {
			return s[:i] + "..."
		}
	}
	return s[:max-4] + "..."
}

// MeasureLaunch is BeginLaunch for the manager (manager.LaunchMeasurer):
// it records each opened volume layer by its identity (fstat) and, for a
// read-only layer, the content digest storage vouches for
// (hv.DiskFile.SHA256), and returns Launch.Measure for the backend.
func (m *Measurer) MeasureLaunch(spec vm.Spec, volumes [][]hv.DiskFile) (func(role string, f *os.File) error, error) {
	layers := make([][]DiskLayer, len(volumes))
	for i, chain := range volumes {
		for _, df := range chain {
			l := DiskLayer{Format: df.Format, ReadOnly: df.ReadOnly, ContentSHA256: df.SHA256}
			var st syscall.Stat_t
			if err := syscall.Fstat(int(df.File.Fd()), &st); err != nil {
				return nil, fmt.Errorf("measure: vm %q: disks[%d]: %w", spec.Name, i, err)
			}
			l.Dev, l.Ino, l.Size = uint64(st.Dev), st.Ino, st.Size
			layers[i] = append(layers[i], l)
		}
	}
	l, err := m.BeginLaunch(spec, layers)
	if err != nil {
		return nil, err
	}
	return l.Measure, nil
}
