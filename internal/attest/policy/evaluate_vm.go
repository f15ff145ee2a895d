package policy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

// maxContentEvents bounds the vm-disk-content events kept per launch
// (MaxDisks is 8 and a chain a handful of layers).
const maxContentEvents = 64

// vmState is a running VM of the report and its latest launch.
type vmState struct {
	name    string
	running bool
	intro   *attest.Introspection
	// defined: a vm-definition of this VM was seen, so launch events
	// that follow belong to a launch.
	defined bool
	launch  *launch // latest launch, kept for running VMs only
}

// launch is what the latest launch of a VM measured. Each of definition,
// cmdline, kernel and initrd is measured once per launch; a second one is
// a failure, so only the first is kept and the rest counted.
type launch struct {
	def                        [32]byte
	cmdline, kernel, initrd    [32]byte
	nCmdline, nKernel, nInitrd int
	contents                   [][32]byte
	nContents                  int
}

// launchEvent files one PCR 12 event under its VM. A vm-definition starts
// a new launch (the latest launch is what a VM is judged on; earlier ones
// are history). vm-disk events record a disk's identity (device, inode),
// which has no golden value and is not judged.
func (e *evaluation) launchEvent(i int, ev *eventlog.Event) {
	if ev.Type != eventlog.EventIPL {
		e.badEvent(i, ev, fmt.Sprintf("event type %s: Bulwark writes only EV_IPL", ev.Type))
		return
	}
	info, err := e.parse(ev)
	if err != nil {
		e.badEvent(i, ev, "cannot tell which VM launch this belongs to: "+err.Error())
		return
	}
	vm := info.Get("vm")
	if !validVMName(vm) {
		e.badEvent(i, ev, "names no valid VM: "+strconv.Quote(clip(vm, 80)))
		return
	}
	st := e.vms[vm]
	if info.Kind == KindVMDefinition {
		if st == nil {
			st = &vmState{name: vm}
			e.vms[vm] = st
		}
		st.defined = true
		if st.running {
			st.launch = &launch{def: ev.Digest}
		}
		return
	}
	if st == nil || !st.defined {
		e.badEvent(i, ev, fmt.Sprintf("%s of vm %s comes before any vm-definition of it", info.Kind, vm))
		return
	}
	if !st.running {
		return // history
	}
	l := st.launch
	switch info.Kind {
	case KindVMCmdline:
		keep(&l.cmdline, &l.nCmdline, ev.Digest)
	case KindVMKernel:
		keep(&l.kernel, &l.nKernel, ev.Digest)
	case KindVMInitrd:
		keep(&l.initrd, &l.nInitrd, ev.Digest)
	case KindVMDiskContent:
		if l.nContents < maxContentEvents {
			l.contents = append(l.contents, ev.Digest)
		}
		l.nContents++
	}
}

func keep(d *[32]byte, n *int, v [32]byte) {
	if *n == 0 {
		*d = v
	}
	*n++
}

// judgeVMs gives each running VM its verdict, sorted by name.
func (e *evaluation) judgeVMs(host attest.Status) []attest.VMVerdict {
	if len(e.names) == 0 {
		return nil
	}
	out := make([]attest.VMVerdict, 0, len(e.names))
	for _, name := range e.names {
		st := e.vms[name]
		var rs reasons
		if st.launch == nil {
			rs.fail(attest.Reason{Component: "vm-launch", VM: name, Message: "no measured launch of this running VM in PCR 12"})
		} else {
			e.judgeLaunch(name, st.launch, &rs)
		}
		e.judgeIntrospection(name, st.intro, &rs)
		if host != attest.Trusted {
			rs.unknown(attest.Reason{Component: "host", VM: name,
				Message: fmt.Sprintf("the host is %s: what it measured of this VM cannot be relied on", host)})
		}
		vv := attest.VMVerdict{Name: name}
		vv.Status, vv.Reasons = rs.finish()
		out = append(out, vv)
	}
	return out
}

// judgeLaunch checks a launch against the VM's rule: one allowed image
// whose kernel and initrd (and disk, see judgeDisks) both match, and the
// definition and command line where the rule lists them.
func (e *evaluation) judgeLaunch(name string, l *launch, rs *reasons) {
	rule := e.ix.vms[name]
	if rule == nil {
		rule = e.ix.def
	}
	if rule == nil || len(rule.images) == 0 {
		rs.fail(attest.Reason{Component: "policy", VM: name, Message: "the policy allows no image for this VM (no vms entry with images, no vm_default)"})
	}
	once := func(component string, n int) bool {
		if n > 1 {
			rs.fail(attest.Reason{Component: component, VM: name, Message: fmt.Sprintf("%s measured %d times in one launch", component, n)})
		}
		return n <= 1
	}
	okK, okI := once(KindVMKernel, l.nKernel), once(KindVMInitrd, l.nInitrd)
	switch {
	case l.nKernel == 0:
		rs.fail(attest.Reason{Component: KindVMKernel, VM: name, Message: "no kernel measured in the latest launch"})
	case rule != nil && len(rule.images) > 0 && okK && okI:
		e.matchImage(name, rule, l, rs)
	}
	if rule == nil {
		return
	}
	if rule.definition != nil && !rule.definition.has(l.def) {
		rs.fail(attest.Reason{Component: KindVMDefinition, VM: name, Expected: rule.definition.hex, Found: hexOf(l.def),
			Message: "the VM's definition is not one the policy allows"})
	}
	if rule.cmdline != nil && once(KindVMCmdline, l.nCmdline) {
		if l.nCmdline == 0 {
			rs.fail(attest.Reason{Component: KindVMCmdline, VM: name, Expected: rule.cmdline.hex, Message: "no command line measured in the latest launch"})
		} else if !rule.cmdline.has(l.cmdline) {
			rs.fail(attest.Reason{Component: KindVMCmdline, VM: name, Expected: rule.cmdline.hex, Found: hexOf(l.cmdline),
				Message: "the kernel command line is not one the policy allows"})
		}
	}
}

// matchImage finds the allowed images whose kernel and initrd are the
// launch's (an image without initrd matches a launch without one). A
// kernel of one image with the initrd of another does not match.
func (e *evaluation) matchImage(name string, rule *vmIx, l *launch, rs *reasons) {
	var cands, match []*imageIx
	for _, im := range e.ix.byKernel[l.kernel] {
		if !rule.allows(im) {
			continue
		}
		cands = append(cands, im)
		if l.nInitrd == 0 && im.img.Initrd == "" || l.nInitrd == 1 && im.img.Initrd != "" && im.initrd == l.initrd {
			match = append(match, im)
		}
	}
	if len(match) > 0 {
		e.judgeDisks(name, rule, match, l, rs)
		return
	}
	if len(cands) > 0 { // the kernel is an allowed image's: the initrd is wrong
		r := attest.Reason{Component: KindVMInitrd, VM: name, Expected: expected(cands, func(im *imageIx) string { return im.img.Initrd })}
		if l.nInitrd == 0 {
			r.Message = fmt.Sprintf("no initrd measured, but image %s, whose kernel was measured, boots with one", imageNames(cands))
		} else {
			r.Found = hexOf(l.initrd)
			r.Message = fmt.Sprintf("the initrd is not that of image %s, whose kernel was measured", imageNames(cands))
		}
		rs.fail(r)
		return
	}
	var icands []*imageIx
	if l.nInitrd == 1 {
		for _, im := range e.ix.byInitrd[l.initrd] {
			if rule.allows(im) {
				icands = append(icands, im)
			}
		}
	}
	if len(icands) > 0 { // the initrd is an allowed image's: the kernel is wrong
		rs.fail(attest.Reason{Component: KindVMKernel, VM: name, Found: hexOf(l.kernel),
			Expected: expected(icands, func(im *imageIx) string { return im.img.Kernel }),
			Message:  fmt.Sprintf("the kernel is not that of image %s, whose initrd was measured", imageNames(icands))})
		return
	}
	rs.fail(attest.Reason{Component: KindVMKernel, VM: name, Found: hexOf(l.kernel),
		Expected: expected(rule.images, func(im *imageIx) string { return im.img.Kernel }),
		Message:  fmt.Sprintf("the kernel is not that of any image allowed for this VM (%s)", imageNames(rule.images))})
	if l.nInitrd == 1 {
		rs.fail(attest.Reason{Component: KindVMInitrd, VM: name, Found: hexOf(l.initrd),
			Expected: expected(rule.images, func(im *imageIx) string { return im.img.Initrd }),
			Message:  fmt.Sprintf("the initrd is not that of any image allowed for this VM (%s)", imageNames(rule.images))})
	}
}

// judgeDisks applies the disk rule to a launch that matched images m:
//   - every vm-disk-content digest must be the disk of an image in m or in
//     the rule's disks, else the VM is untrusted;
//   - if every image in m names a disk, one vm-disk-content digest must be
//     such a disk: none equal is untrusted; no vm-disk-content event at
//     all is unknown (a daemon that predates those events, or a VM whose
//     disk is a writable copy: policies for those leave "disk" out).
func (e *evaluation) judgeDisks(name string, rule *vmIx, m []*imageIx, l *launch, rs *reasons) {
	needDisk := true
	for _, im := range m {
		needDisk = needDisk && im.img.Disk != ""
	}
	imageDisk := func(d [32]byte) bool {
		for _, im := range m {
			if im.img.Disk != "" && im.disk == d {
				return true
			}
		}
		return false
	}
	found := false
	for _, c := range l.contents {
		switch {
		case imageDisk(c):
			found = true
		case rule.disks.has(c):
		default:
			exp := expected(m, func(im *imageIx) string { return im.img.Disk })
			if rule.disks != nil {
				exp = mergeSorted(exp, rule.disks.hex)
			}
			rs.fail(attest.Reason{Component: KindVMDiskContent, VM: name, Expected: exp, Found: hexOf(c),
				Message: "no golden value for this read-only disk layer's content"})
		}
	}
	if l.nContents > maxContentEvents {
		rs.fail(attest.Reason{Component: KindVMDiskContent, VM: name, Message: fmt.Sprintf("%d disk content events in one launch exceed %d", l.nContents, maxContentEvents)})
	}
	if !needDisk || found {
		return
	}
	exp := expected(m, func(im *imageIx) string { return im.img.Disk })
	if l.nContents == 0 {
		rs.unknown(attest.Reason{Component: KindVMDiskContent, VM: name, Expected: exp,
			Message: fmt.Sprintf("image %s names a disk, but no disk content was measured in this launch", imageNames(m))})
		return
	}
	rs.fail(attest.Reason{Component: KindVMDiskContent, VM: name, Expected: exp,
		Message: fmt.Sprintf("no read-only disk layer has the content of image %s's disk", imageNames(m))})
}

// judgeIntrospection judges the VM's latest guest kernel scan.
func (e *evaluation) judgeIntrospection(name string, in *attest.Introspection, rs *reasons) {
	r := &e.p.Introspection
	if in == nil {
		if r.Required {
			rs.unknown(attest.Reason{Component: "introspection", VM: name, Message: "no introspection scan of this VM (the policy requires one)"})
		}
		return
	}
	if maxAge := time.Duration(e.ix.introMaxAge); r.Required && e.ref.Sub(in.Checked) > maxAge {
		rs.unknown(attest.Reason{Component: "introspection", VM: name,
			Message: fmt.Sprintf("the latest scan is %s old (max_age %s)", e.ref.Sub(in.Checked).Round(time.Second), maxAge)})
	}
	if in.Error != "" {
		rs.unknown(attest.Reason{Component: "introspection", VM: name, Message: "the scan failed: " + safeText(in.Error)})
	}
	findings := in.Findings
	if len(findings) > MaxFindings {
		rs.unknown(attest.Reason{Component: "introspection", VM: name, Message: fmt.Sprintf("%d findings; only the first %d are judged", len(findings), MaxFindings)})
		findings = findings[:MaxFindings]
	}
	for _, f := range findings {
		switch {
		case !validKind(f.Kind):
			rs.fail(attest.Reason{Component: "introspection/invalid", VM: name, Message: "finding of an invalid kind " + strconv.Quote(clip(f.Kind, 40)) + ": " + safeText(f.Summary)})
		case e.ix.ignoreKinds[f.Kind]:
		case f.Kind == "scan_error":
			rs.unknown(attest.Reason{Component: "introspection/scan_error", VM: name, Message: safeText(f.Summary)})
		default:
			rs.fail(attest.Reason{Component: "introspection/" + f.Kind, VM: name, Message: safeText(f.Summary)})
		}
	}
}

// expected lists field(im) of images, sorted, without repeats or empties,
// at most maxExpected.
func expected(images []*imageIx, field func(*imageIx) string) []string {
	var out []string
	for _, im := range images {
		if v := field(im); v != "" {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	out = compact(out)
	if len(out) > maxExpected {
		out = out[:maxExpected]
	}
	return out
}

func mergeSorted(a, b []string) []string {
	out := append(append([]string(nil), a...), b...)
	sort.Strings(out)
	out = compact(out)
	if len(out) > maxExpected {
		out = out[:maxExpected]
	}
	return out
}

func compact(s []string) []string {
	if len(s) < 2 {
		return s
	}
	j := 1
	for i := 1; i < len(s); i++ {
		if s[i] != s[j-1] {
			s[j] = s[i]
			j++
		}
	}
	return s[:j]
}

// imageNames names images for a message: "debian-12", "a, b or c", or the
// first eight and how many more.
func imageNames(images []*imageIx) string {
	const show = 8
	var b strings.Builder
	for i, im := range images {
		if i == show {
			fmt.Fprintf(&b, " and %d more", len(images)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(im.name)
	}
	return b.String()
}

// safeText bounds hostile text for a message and quotes it if it holds
// anything but printable characters (a newline could forge a log line).
func safeText(s string) string {
	s = clip(s, maxText)
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
