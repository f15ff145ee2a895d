package policy

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

// Limits of one evaluation. Inputs past them leave the host unknown
// rather than being judged in part.
const (
	// MaxEvaluatedEvents is the event log parser's own bound.
	MaxEvaluatedEvents = eventlog.MaxEvents
	// MaxReportVMs and MaxRuntimeChecks bound the report's lists.
	MaxReportVMs     = 10_000
	MaxRuntimeChecks = 10_000
	// MaxFindings bounds the introspection findings judged per VM.
	MaxFindings = 1_000
	// MaxReasons bounds the reasons kept per host and per VM; one more
	// says how many were left out.
	MaxReasons = 32
	// maxExpected bounds Reason.Expected (a "*" rule may allow thousands
	// of images).
	maxExpected = MaxDigests
	// maxText bounds hostile text (paths, summaries, errors) in a message.
	maxText = 256
)

// Severities of a reason: a failed check makes its subject untrusted, an
// undecided one unknown.
const (
	undecided = 1
	failed    = 2
)

type reason struct {
	sev int
	attest.Reason
}

type reasons []reason

func (rs *reasons) fail(r attest.Reason)    { *rs = append(*rs, reason{failed, r}) }
func (rs *reasons) unknown(r attest.Reason) { *rs = append(*rs, reason{undecided, r}) }

// finish sorts the reasons (failures first, then by component, VM,
// message, found: equal inputs give equal verdicts), keeps MaxReasons and
// says how many more there were, and returns the status they imply.
func (rs reasons) finish() (attest.Status, []attest.Reason) {
	if len(rs) == 0 {
		return attest.Trusted, nil
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		switch {
		case a.sev != b.sev:
			return a.sev > b.sev
		case a.Component != b.Component:
			return a.Component < b.Component
		case a.VM != b.VM:
			return a.VM < b.VM
		case a.Message != b.Message:
			return a.Message < b.Message
		}
		return a.Found < b.Found
	})
	st := attest.Unknown
	if rs[0].sev == failed {
		st = attest.Untrusted
	}
	n := min(len(rs), MaxReasons)
	out := make([]attest.Reason, n, n+1)
	for i := range out {
		out[i] = rs[i].Reason
	}
	if len(rs) > n {
		out = append(out, attest.Reason{Component: "verdict", Message: fmt.Sprintf("and %d more reasons", len(rs)-n)})
	}
	return st, out
}

// Evaluate judges a host's evidence against p. The caller has verified the
// quote's signature and nonce, that the report is the one bound into the
// quote, and that events replay to the quoted PCRs; Evaluate judges only
// content. It does no I/O, is deterministic for equal inputs, and may run
// concurrently on one Policy. now is the verdict's time; ages (max_age)
// are measured on the host's clock, rep.Time minus the check's time, as
// both come from it (now when rep.Time is zero).
//
// The host (PCR 11, PCR 13, rep.Runtime) and each running VM (its latest
// launch in PCR 12, its introspection) get a status each: untrusted when a
// check failed, unknown when one could not be decided, else trusted. A VM
// on a host that is not trusted is at best unknown: its measurements were
// taken by that host. VMs not running get no entry.
func Evaluate(p *Policy, events []eventlog.Event, rep attest.Report, now time.Time) attest.Verdict {
	v := attest.Verdict{Host: rep.Host, Time: now, Status: attest.Unknown}
	if p == nil {
		v.Reasons = []attest.Reason{{Component: "policy", Message: "no policy: nothing to compare the evidence with"}}
		return v
	}
	v.PolicyVersion = p.Version
	ix := p.ix
	if ix == nil { // a policy built by hand, or edited: index it for this call only
		if err := p.validate(); err != nil {
			v.Reasons = []attest.Reason{{Component: "policy", Message: err.Error()}}
			return v
		}
		ix = buildIndex(p)
	}
	if len(events) > MaxEvaluatedEvents {
		v.Reasons = []attest.Reason{{Component: "event-log", Message: fmt.Sprintf("%d events exceed the %d this verifier judges", len(events), MaxEvaluatedEvents)}}
		return v
	}
	ref := rep.Time
	if ref.IsZero() {
		ref = now
	}
	e := &evaluation{ix: ix, p: p, ref: ref, vms: make(map[string]*vmState, len(rep.VMs)), buf: make([]Field, 0, 16)}
	e.collectVMs(rep.VMs)
	for i := range events {
		e.event(i, &events[i])
	}
	e.hostPresence()
	e.runtimeChecks(rep.Runtime)
	v.Status, v.Reasons = e.host.finish()
	v.VMs = e.judgeVMs(v.Status)
	return v
}

// evaluation is the state of one Evaluate call.
type evaluation struct {
	ix  *index
	p   *Policy
	ref time.Time

	host reasons
	// vms are the running VMs of the report and the VMs launch events
	// name, by name; names are the running ones, sorted.
	vms   map[string]*vmState
	names []string

	sawBulwark, sawQEMU, sawHardening bool
	sawSeccomp                        map[string]bool

	buf []Field // reused by parse
}

// parse parses an event's data into e's reused field buffer: the fields
// are valid until the next call (their strings stay valid).
func (e *evaluation) parse(ev *eventlog.Event) (EventInfo, error) {
	info, err := parseEventData(ev.PCR, ev.Data, e.buf)
	if cap(info.Fields) > cap(e.buf) {
		e.buf = info.Fields[:0]
	}
	return info, err
}

func (e *evaluation) collectVMs(list []attest.VMReport) {
	if len(list) > MaxReportVMs {
		e.host.unknown(attest.Reason{Component: "report", Message: fmt.Sprintf("the report lists %d VMs; only the first %d are judged", len(list), MaxReportVMs)})
		list = list[:MaxReportVMs]
	}
	seen := make(map[string]bool, len(list))
	for i := range list {
		r := &list[i]
		switch {
		case !validVMName(r.Name):
			e.host.unknown(attest.Reason{Component: "report", Message: "the report lists a VM with an invalid name " + strconv.Quote(clip(r.Name, 80))})
		case seen[r.Name]:
			e.host.unknown(attest.Reason{Component: "report", VM: r.Name, Message: "the report lists this VM twice; the first entry is judged"})
		case r.Running:
			e.vms[r.Name] = &vmState{name: r.Name, running: true, intro: r.Introspection}
			e.names = append(e.names, r.Name)
		}
		seen[r.Name] = true
	}
	sort.Strings(e.names)
}

// event routes one event by PCR. Events in other PCRs are not quoted and
// not judged; EV_NO_ACTION extends nothing and is skipped.
func (e *evaluation) event(i int, ev *eventlog.Event) {
	if ev.Type == eventlog.EventNoAction {
		return
	}
	switch ev.PCR {
	case attest.PCRHost:
		e.hostEvent(i, ev)
	case attest.PCRLaunch:
		e.launchEvent(i, ev)
	case attest.PCRRuntime:
		e.runtimeEvent(i, ev)
	}
}

func hexOf(d [32]byte) string { return hex.EncodeToString(d[:]) }

// badEvent is a failure for an event this verifier cannot attribute: its
// digest went into a quoted PCR, so it cannot be ignored.
func (e *evaluation) badEvent(i int, ev *eventlog.Event, msg string) {
	e.host.fail(attest.Reason{Component: "event-log", Found: hexOf(ev.Digest),
		Message: fmt.Sprintf("PCR %d event %d: %s", ev.PCR, i, msg)})
}

// hostEvent judges one PCR 11 event: its digest must be in the allow-list
// of the component its data names.
func (e *evaluation) hostEvent(i int, ev *eventlog.Event) {
	if ev.Type != eventlog.EventIPL {
		e.badEvent(i, ev, fmt.Sprintf("event type %s: Bulwark writes only EV_IPL", ev.Type))
		return
	}
	info, err := e.parse(ev)
	if err != nil {
		e.badEvent(i, ev, "no golden value for this event: "+err.Error())
		return
	}
	var a *allow
	component := info.Kind
	switch info.Kind {
	case KindBulwarkBinary:
		a, e.sawBulwark = e.ix.bulwark, true
	case KindQEMUBinary:
		a, e.sawQEMU = e.ix.qemu, true
	case KindHardeningConfig:
		a, e.sawHardening = e.ix.hardening, true
	case KindSeccompFilter:
		name := info.Get("name")
		a = e.ix.seccomp[name]
		component += "/" + name
		if e.sawSeccomp == nil {
			e.sawSeccomp = map[string]bool{}
		}
		e.sawSeccomp[name] = true
	case KindQEMUFirmware:
		name := info.Get("name")
		a = e.ix.firmware[name]
		component += "/" + name
	}
	if a == nil {
		e.host.fail(attest.Reason{Component: component, Found: hexOf(ev.Digest),
			Message: fmt.Sprintf("no golden value for %s in the policy (PCR 11 event %d)", component, i)})
		return
	}
	if !a.has(ev.Digest) {
		e.host.fail(attest.Reason{Component: component, Expected: a.hex, Found: hexOf(ev.Digest),
			Message: fmt.Sprintf("%s digest is not in the policy's allow-list (PCR 11 event %d%s)", component, i, describePath(&info))})
	}
}

// describePath adds what the data says was measured, for people: it is
// not bound to the PCR.
func describePath(info *EventInfo) string {
	if p, ok := info.Lookup("path"); ok {
		return ", path " + strconv.Quote(clip(p, maxText))
	}
	if info.Kind == KindHardeningConfig && len(info.Fields) == 1 {
		return ", config " + strconv.Quote(clip(info.Fields[0].Value, maxText))
	}
	return ""
}

// hostPresence requires the host layer to have been measured: the daemon,
// QEMU, the hardening configuration and every seccomp filter the policy
// names.
func (e *evaluation) hostPresence() {
	if !e.sawBulwark && !e.sawQEMU && !e.sawHardening {
		e.host.fail(attest.Reason{Component: "host", Message: "host layer not measured: PCR 11 has no bulwark-binary, qemu-binary or hardening-config event"})
		return
	}
	for _, c := range []struct {
		name string
		saw  bool
	}{{KindBulwarkBinary, e.sawBulwark}, {KindQEMUBinary, e.sawQEMU}, {KindHardeningConfig, e.sawHardening}} {
		if !c.saw {
			e.host.fail(attest.Reason{Component: c.name, Message: c.name + " not measured in PCR 11"})
		}
	}
	for _, n := range e.ix.seccompNames {
		if !e.sawSeccomp[n] {
			e.host.fail(attest.Reason{Component: KindSeccompFilter + "/" + n, Expected: e.ix.seccomp[n].hex,
				Message: "seccomp filter " + n + " is in the policy but was not measured in PCR 11"})
		}
	}
}

// runtimeEvent: anything in PCR 13 is a runtime integrity finding the TPM
// keeps until reboot, so the host is untrusted whatever the data says.
func (e *evaluation) runtimeEvent(i int, ev *eventlog.Event) {
	info, err := e.parse(ev)
	if err != nil {
		e.host.fail(attest.Reason{Component: "runtime", Found: hexOf(ev.Digest),
			Message: fmt.Sprintf("PCR 13 event %d records a runtime integrity finding (its data is unreadable: %v)", i, err)})
		return
	}
	vm := info.Get("vm")
	if !validVMName(vm) {
		vm = ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "PCR 13 event %d: code of process %s (pid %s", i, info.Get("process"), info.Get("pid"))
	if vm != "" {
		fmt.Fprintf(&b, ", vm %s", vm)
	}
	fmt.Fprintf(&b, ") differs from its binary %s at offset %s (%s regions); the TPM keeps this until reboot",
		strconv.Quote(clip(info.Get("binary"), maxText)), info.Get("first_offset"), info.Get("count"))
	e.host.fail(attest.Reason{Component: runtimeComponent(info.Get("process")), VM: vm, Found: hexOf(ev.Digest), Message: b.String()})
}

// runtimeChecks judges the report's re-measurements: a mismatch fails the
// host; an error leaves it unknown (untrusted with on_error "untrusted");
// with runtime.required, a missing or stale check of the daemon or of a
// running VM's QEMU leaves it unknown.
func (e *evaluation) runtimeChecks(list []attest.RuntimeCheck) {
	if len(list) > MaxRuntimeChecks {
		e.host.unknown(attest.Reason{Component: "runtime", Message: fmt.Sprintf("the report lists %d runtime checks; only the first %d are judged", len(list), MaxRuntimeChecks)})
		list = list[:MaxRuntimeChecks]
	}
	maxAge := time.Duration(e.ix.rtMaxAge)
	freshDaemon := false
	freshQEMU := map[string]bool{}
	for i := range list {
		rc := &list[i]
		component, vm := runtimeComponent(rc.Process), ""
		if rc.Process == "qemu" && validVMName(rc.VM) {
			vm = rc.VM
		}
		for j, m := range rc.Mismatches {
			if j == MaxReasons {
				e.host.fail(attest.Reason{Component: component, VM: vm, Message: fmt.Sprintf("and %d more differing regions", len(rc.Mismatches)-j)})
				break
			}
			sym := ""
			if m.Symbol != "" {
				sym = " in " + strconv.Quote(clip(m.Symbol, maxText))
			}
			e.host.fail(attest.Reason{Component: component, VM: vm, Expected: []string{clip(m.Expected, 64)}, Found: clip(m.Found, 64),
				Message: fmt.Sprintf("code of %s (pid %d) differs from %s at offset %#x%s (%d bytes)",
					rc.Process, rc.PID, strconv.Quote(clip(m.Object, maxText)), m.Offset, sym, m.Length)})
		}
		if rc.Error != "" {
			r := attest.Reason{Component: component, VM: vm,
				Message: fmt.Sprintf("runtime check of %s (pid %d) could not be done: %s", rc.Process, rc.PID, strconv.Quote(clip(rc.Error, maxText)))}
			if e.p.Runtime.OnError == OnErrorUntrusted {
				e.host.fail(r)
			} else {
				e.host.unknown(r)
			}
			continue
		}
		if e.ref.Sub(rc.Checked) > maxAge {
			continue
		}
		switch {
		case rc.Process == "daemon":
			freshDaemon = true
		case rc.Process == "qemu" && vm != "":
			freshQEMU[vm] = true
		}
	}
	if !e.p.Runtime.Required {
		return
	}
	if !freshDaemon {
		e.host.unknown(attest.Reason{Component: "runtime/daemon", Message: fmt.Sprintf("no runtime check of the daemon in the last %s", maxAge)})
	}
	for _, n := range e.names {
		if !freshQEMU[n] {
			e.host.unknown(attest.Reason{Component: "runtime/qemu", VM: n, Message: fmt.Sprintf("no runtime check of this VM's QEMU in the last %s", maxAge)})
		}
	}
}

// runtimeComponent names a process's runtime component; the process name
// is host-supplied, so only the two known ones are used verbatim.
func runtimeComponent(process string) string {
	switch process {
	case "daemon":
		return "runtime/daemon"
	case "qemu":
		return "runtime/qemu"
	}
	return "runtime/other"
}
