package measure

import (
	"crypto/sha256"
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
// hash disk images (they are large and writable), so a layer is recorded by
// its identity, which the event data says.
type DiskLayer struct {
	Format   string
	ReadOnly bool
	Dev, Ino uint64
	Size     int64
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
// set, is disk i's opened chain). The kernel and initrd follow through
// Launch.Measure, from the descriptors the backend passes to QEMU.
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
	}
	return &Launch{m: m, name: spec.Name, got: map[string]bool{}}, nil
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
// it records each opened volume layer by its identity (fstat) and returns
// Launch.Measure for the backend.
func (m *Measurer) MeasureLaunch(spec vm.Spec, volumes [][]hv.DiskFile) (func(role string, f *os.File) error, error) {
	layers := make([][]DiskLayer, len(volumes))
	for i, chain := range volumes {
		for _, df := range chain {
			l := DiskLayer{Format: df.Format, ReadOnly: df.ReadOnly}
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
