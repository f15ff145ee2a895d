package policy

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

// Golden values are gathered from known-good inputs. FromHostEvents and
// AddHostEvents take them from a reference host's own PCR 11 events: that
// is trust on first use. They are only as good as that host was when its
// log was read, so read it from a freshly installed host that has run
// nothing else, over an authenticated quote, or take the digests from the
// build (sha256sum of the released binaries) instead.

// FromHostEvents returns a policy of the given version whose host section
// holds exactly the digests of the reference host's PCR 11 events (trust
// on first use, see above). It has no images: add them with AddImage.
func FromHostEvents(version int, events []eventlog.Event) (*Policy, error) {
	p := &Policy{Version: version}
	if err := p.AddHostEvents(events); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// AddHostEvents adds the digests of a reference host's PCR 11 events to
// p's host section (trust on first use). Every PCR 11 event must parse,
// and the host layer must have been measured.
func (p *Policy) AddHostEvents(events []eventlog.Event) error {
	h := p.Host
	h.QEMUFirmware = cloneNamed(h.QEMUFirmware)
	h.SeccompFilter = cloneNamed(h.SeccompFilter)
	var sawBulwark, sawQEMU, sawHardening bool
	for i, ev := range events {
		if ev.PCR != attest.PCRHost || ev.Type == eventlog.EventNoAction {
			continue
		}
		info, err := ParseEventData(ev.PCR, ev.Data)
		if err != nil {
			return fmt.Errorf("policy: reference host: event %d: %w", i, err)
		}
		d := hexOf(ev.Digest)
		switch info.Kind {
		case KindBulwarkBinary:
			h.BulwarkBinary, sawBulwark = addDigest(h.BulwarkBinary, d), true
		case KindQEMUBinary:
			h.QEMUBinary, sawQEMU = addDigest(h.QEMUBinary, d), true
		case KindHardeningConfig:
			h.HardeningConfig, sawHardening = addDigest(h.HardeningConfig, d), true
		case KindSeccompFilter:
			h.SeccompFilter = addNamed(h.SeccompFilter, info.Get("name"), d)
		case KindQEMUFirmware:
			h.QEMUFirmware = addNamed(h.QEMUFirmware, info.Get("name"), d)
		}
	}
	if !sawBulwark || !sawQEMU || !sawHardening {
		return errors.New("policy: reference host: host layer not measured (bulwark-binary, qemu-binary and hardening-config are needed in PCR 11)")
	}
	p.Host, p.ix = h, nil
	return nil
}

// AddImage adds or confirms an image. Adding a name again with other
// digests is an error: an image's files belong together. initrdHex and
// diskHex may be empty. Call Validate when done editing.
func (p *Policy) AddImage(name, kernelHex, initrdHex, diskHex string) error {
	im := Image{Kernel: kernelHex, Initrd: initrdHex, Disk: diskHex}
	if err := im.validate(mapPath("images", name), name); err != nil {
		return err
	}
	if old, ok := p.Images[name]; ok {
		if old != im {
			return errAt(mapPath("images", name), "already in the policy with other digests")
		}
		return nil
	}
	if len(p.Images) >= MaxImages {
		return errAt("images", "already %d images", MaxImages)
	}
	images := make(map[string]Image, len(p.Images)+1)
	for k, v := range p.Images {
		images[k] = v
	}
	images[name] = im
	p.Images, p.ix = images, nil
	return nil
}

// ImageFromLaunch returns the kernel, initrd and read-only disk content
// digests of the latest launch of vm in events: the golden values of a
// reference VM booted from a known-good image. The disk is set only when
// the launch measured exactly one disk content.
func ImageFromLaunch(events []eventlog.Event, vm string) (Image, error) {
	e := &evaluation{vms: map[string]*vmState{vm: {name: vm, running: true}}}
	for i := range events {
		if events[i].PCR == attest.PCRLaunch && events[i].Type != eventlog.EventNoAction {
			e.launchEvent(i, &events[i])
		}
	}
	l := e.vms[vm].launch
	switch {
	case l == nil:
		return Image{}, fmt.Errorf("policy: no launch of vm %q in the events", vm)
	case l.nKernel != 1 || l.nInitrd > 1:
		return Image{}, fmt.Errorf("policy: vm %q: latest launch measured %d kernels and %d initrds", vm, l.nKernel, l.nInitrd)
	}
	im := Image{Kernel: hexOf(l.kernel)}
	if l.nInitrd == 1 {
		im.Initrd = hexOf(l.initrd)
	}
	if l.nContents == 1 {
		im.Disk = hexOf(l.contents[0])
	}
	return im, nil
}

// Merge returns a policy that allows what either allows: allow-lists are
// united, images and VM rules taken from both (an image named in both
// must have the same digests). Its version is the greater one. For the
// judgement settings it keeps the stricter: introspection and runtime
// checks are required if either requires them, the smaller max_age wins,
// only kinds both ignore stay ignored, on_error "untrusted" wins. Neither
// input is changed; the result is validated.
func Merge(a, b *Policy) (*Policy, error) {
	if a == nil || b == nil {
		return nil, errors.New("policy: merge: nil policy")
	}
	m := &Policy{Version: max(a.Version, b.Version)}
	m.Host = HostRules{
		BulwarkBinary:   union(a.Host.BulwarkBinary, b.Host.BulwarkBinary),
		QEMUBinary:      union(a.Host.QEMUBinary, b.Host.QEMUBinary),
		HardeningConfig: union(a.Host.HardeningConfig, b.Host.HardeningConfig),
		QEMUFirmware:    unionNamed(a.Host.QEMUFirmware, b.Host.QEMUFirmware),
		SeccompFilter:   unionNamed(a.Host.SeccompFilter, b.Host.SeccompFilter),
	}
	for _, src := range []*Policy{a, b} {
		for _, n := range sortedKeys(src.Images) {
			im := src.Images[n]
			if err := m.AddImage(n, im.Kernel, im.Initrd, im.Disk); err != nil {
				return nil, fmt.Errorf("policy: merge: %w", err)
			}
		}
	}
	if len(a.VMs)+len(b.VMs) > 0 {
		m.VMs = map[string]VMRule{}
		for _, src := range []*Policy{a, b} {
			for n, r := range src.VMs {
				o := m.VMs[n]
				m.VMs[n] = VMRule{
					Images:     unionImages(o.Images, r.Images),
					Definition: union(o.Definition, r.Definition),
					Cmdline:    union(o.Cmdline, r.Cmdline),
					Disks:      union(o.Disks, r.Disks),
				}
			}
		}
	}
	switch {
	case a.VMDefault != nil && b.VMDefault != nil:
		m.VMDefault = &DefaultRule{Images: unionImages(a.VMDefault.Images, b.VMDefault.Images), Disks: union(a.VMDefault.Disks, b.VMDefault.Disks)}
	case a.VMDefault != nil:
		d := *a.VMDefault
		m.VMDefault = &d
	case b.VMDefault != nil:
		d := *b.VMDefault
		m.VMDefault = &d
	}
	m.Introspection = IntrospectionRules{
		Required:    a.Introspection.Required || b.Introspection.Required,
		MaxAge:      minAge(a.Introspection.MaxAge, b.Introspection.MaxAge),
		IgnoreKinds: intersect(a.Introspection.IgnoreKinds, b.Introspection.IgnoreKinds),
	}
	m.Runtime = RuntimeRules{
		Required: a.Runtime.Required || b.Runtime.Required,
		MaxAge:   minAge(a.Runtime.MaxAge, b.Runtime.MaxAge),
		OnError:  a.Runtime.OnError,
	}
	if b.Runtime.OnError == OnErrorUntrusted {
		m.Runtime.OnError = OnErrorUntrusted
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("policy: merge: %w", err)
	}
	return m, nil
}

func addDigest(list []string, d string) []string {
	if slices.Contains(list, d) {
		return list
	}
	return append(slices.Clip(list), d)
}

func addNamed(m map[string][]string, name, d string) map[string][]string {
	if m == nil {
		m = map[string][]string{}
	}
	m[name] = addDigest(m[name], d)
	return m
}

func cloneNamed(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	c := make(map[string][]string, len(m))
	for k, v := range m {
		c[k] = slices.Clone(v)
	}
	return c
}

// union keeps a's order and appends b's new entries; nil if both are empty.
func union(a, b []string) []string {
	var out []string
	for _, l := range [][]string{a, b} {
		for _, d := range l {
			out = addDigest(out, d)
		}
	}
	return out
}

func unionNamed(a, b map[string][]string) map[string][]string {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := map[string][]string{}
	for _, m := range []map[string][]string{a, b} {
		for k, v := range m {
			out[k] = union(out[k], v)
		}
	}
	return out
}

// unionImages unites image lists; "*" absorbs the rest.
func unionImages(a, b []string) []string {
	if slices.Contains(a, AnyImage) || slices.Contains(b, AnyImage) {
		return []string{AnyImage}
	}
	out := union(a, b)
	sort.Strings(out)
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, k := range a {
		if slices.Contains(b, k) {
			out = append(out, k)
		}
	}
	return out
}

// minAge is the stricter of two max_age values (0 is the default).
func minAge(a, b Duration) Duration {
	if a == 0 && b == 0 {
		return 0
	}
	return Duration(min(a.orDefault(), b.orDefault()))
}
