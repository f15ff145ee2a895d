package daemon

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/audit"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/netsw"
	"github.com/bulwark-project/bulwark/internal/pool"
	"github.com/bulwark-project/bulwark/internal/respond"
	"github.com/bulwark-project/bulwark/internal/store"
	"github.com/bulwark-project/bulwark/internal/vm"
	"github.com/bulwark-project/bulwark/internal/vmi/lime"
	"github.com/bulwark-project/bulwark/internal/vmi/mem"
)

// Automatic response to introspection findings (issue 16, item 6). Every
// check of a VM passes through respondingGateway, which hands the
// findings that are new for that VM (the same rule as the events: a
// finding is raised once when it appears, keyed by kind and summary) to
// the responder. The response policy (internal/respond) turns them into
// actions, merged over the scan's findings so that each action runs once:
// isolate (quarantine the VM's switch ports), dump (a LiME image in
// STATE/forensics), pause, stop. They run on their own goroutine, one
// response at a time per VM, each audited as user "bulwark-respond", and
// end in a monitoring event of kind "response" with what was done.
//
// The policy's groups are resource pools: a VM's pool and its ancestors,
// nearest first.

// Store kinds of the response state.
const (
	responsePolicyKind = "response-policy"
	responsePolicyName = "default"
	quarantineKind     = "response-quarantine"
	// seenKind holds, per VM, the finding keys of its last scan, so that a
	// daemon restart does not answer standing findings a second time.
	seenKind = "response-seen"
)

// AuditUser is the user the daemon's own responses are audited as.
const respondUser = "bulwark-respond"

// Bounds on responses. A guest can make a finding appear and vanish on
// every scan, so each response is bounded in what it costs the host.
const (
	// maxPendingResponses bounds the responses queued or running at once;
	// beyond it a response is recorded as skipped.
	maxPendingResponses = 32
	// maxDumpsPerVM bounds the memory images kept per VM: further dumps
	// are refused until an operator removes some (the first images of a
	// compromise are the valuable ones, so none is replaced).
	maxDumpsPerVM = 4
	// dumpFreeMargin is the space a dump must leave free on the state
	// directory's file system.
	dumpFreeMargin = 1 << 30
	// responseTimeout bounds one response (all its actions).
	responseTimeout = 5 * time.Minute
	// maxPoolDepth bounds the walk up the pool tree.
	maxPoolDepth = 64
)

// responder runs the response policy's actions.
type responder struct {
	st      *store.Store
	mgr     *manager.Manager
	sw      *netsw.Switch
	audit   *audit.Log
	pools   func() *pool.Tree // nil: every VM is in the root pool
	dumpDir string            // STATE/forensics, root only
	log     *slog.Logger
	record  func(api.MonitorEvent)

	mu      sync.Mutex
	policy  *respond.Policy
	seen    map[string]map[string]bool // vm → finding keys of its last scan
	vmMu    map[string]*sync.Mutex     // one response at a time per VM
	pending int
}

// newResponder loads the stored policy and re-applies the stored
// quarantines to the switch, so a daemon restart does not lift them; it
// must run before the VMs' ports are re-created (manager.Recover).
func newResponder(ctx context.Context, stateDir string, st *store.Store, mgr *manager.Manager, sw *netsw.Switch,
	auditLog *audit.Log, pools func() *pool.Tree, log *slog.Logger) (*responder, error) {
	r := &responder{st: st, mgr: mgr, sw: sw, audit: auditLog, pools: pools, log: log,
		dumpDir: filepath.Join(stateDir, "forensics"), record: func(api.MonitorEvent) {},
		policy: &respond.Policy{}, seen: map[string]map[string]bool{}, vmMu: map[string]*sync.Mutex{}}
	o, err := st.GetObject(ctx, responsePolicyKind, responsePolicyName)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("response policy: %w", err)
	default:
		if r.policy, err = respond.Parse(o.Spec); err != nil {
			return nil, fmt.Errorf("stored response policy is corrupt: %w", err)
		}
	}
	qs, err := st.ListObjects(ctx, quarantineKind)
	if err != nil {
		return nil, fmt.Errorf("quarantined VMs: %w", err)
	}
	for _, q := range qs {
		sw.SetPortQuarantine(q.Name, true)
	}
	seen, err := st.ListObjects(ctx, seenKind)
	if err != nil {
		return nil, fmt.Errorf("findings already answered: %w", err)
	}
	for _, o := range seen {
		var keys []string
		if err := json.Unmarshal(o.Spec, &keys); err != nil {
			// Lose nothing but the memory of what was answered: standing
			// findings will be answered again, and the log says why.
			log.Warn("respond: stored findings of a VM are unreadable; its standing findings will be answered again", "vm", o.Name, "err", err)
			continue
		}
		m := make(map[string]bool, len(keys))
		for _, k := range keys {
			m[k] = true
		}
		r.seen[o.Name] = m
	}
	return r, nil
}

// saveSeen stores vmName's last-scan finding keys (nil: forgets them).
func (r *responder) saveSeen(vmName string, keys map[string]bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if len(keys) == 0 {
		if err = r.st.DeleteObject(ctx, seenKind, vmName); errors.Is(err, store.ErrNotFound) {
			err = nil
		}
	} else {
		b, _ := json.Marshal(slices.Sorted(maps.Keys(keys)))
		err = putObject(ctx, r.st, seenKind, vmName, b)
	}
	if err != nil {
		r.log.Warn("respond: cannot store the findings answered; after a restart standing findings would be answered again", "vm", vmName, "err", err)
	}
}

// gateway wraps the introspection gateway so that every check's findings
// reach the responder; the result also serves the API's response routes
// (api.Responder).
func (r *responder) gateway(in api.Introspector, record func(api.MonitorEvent)) api.Introspector {
	r.record = record
	return respondingGateway{Introspector: in, responder: r}
}

type respondingGateway struct {
	api.Introspector
	*responder
}

func (g respondingGateway) Query(ctx context.Context, vmName, op string, out any) error {
	err := g.Introspector.Query(ctx, vmName, op, out)
	if err == nil && op == "check" {
		if rep, ok := out.(*api.ScanReport); ok {
			g.findings(vmName, rep)
		}
	}
	return err
}

// ResponsePolicy returns the policy in force.
func (r *responder) ResponsePolicy() *respond.Policy {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.policy
}

// SetResponsePolicy stores p and puts it in force.
func (r *responder) SetResponsePolicy(ctx context.Context, p *respond.Policy) error {
	b, err := p.Marshal()
	if err != nil {
		return err
	}
	if err := putObject(ctx, r.st, responsePolicyKind, responsePolicyName, b); err != nil {
		return err
	}
	r.mu.Lock()
	r.policy = p
	r.mu.Unlock()
	r.log.Info("response policy changed", "vms", len(p.VMs), "pools", len(p.Pools), "global_rules", len(p.Global))
	return nil
}

// Quarantined lists the quarantined VMs.
func (r *responder) Quarantined() []string { return r.sw.Quarantined() }

// Release lifts vm's quarantine and reports whether it was quarantined.
func (r *responder) Release(ctx context.Context, vmName string) (bool, error) {
	err := r.st.DeleteObject(ctx, quarantineKind, vmName)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	changed := r.sw.SetPortQuarantine(vmName, false)
	return changed || err == nil, nil
}

func putObject(ctx context.Context, st *store.Store, kind, name string, b []byte) error {
	err := st.UpdateObject(ctx, kind, name, b)
	if errors.Is(err, store.ErrNotFound) {
		err = st.CreateObject(ctx, kind, name, b)
	}
	return err
}

// findings takes one successful scan of vmName and starts a response for
// the findings that are new since its previous scan, if the policy asks
// for more than recording them.
func (r *responder) findings(vmName string, rep *api.ScanReport) {
	r.mu.Lock()
	seen := make(map[string]bool, len(rep.Findings))
	var fresh []api.ScanFinding
	for _, f := range rep.Findings {
		key := f.Kind + "\x00" + f.Summary
		if !r.seen[vmName][key] && !seen[key] {
			fresh = append(fresh, f)
		}
		seen[key] = true
	}
	changed := !maps.Equal(r.seen[vmName], seen)
	r.seen[vmName] = seen
	policy := r.policy
	r.mu.Unlock()
	if changed {
		r.saveSeen(vmName, seen)
	}
	if len(fresh) == 0 {
		return
	}
	groups := r.poolsOf(vmName)
	var lists [][]respond.Action
	var why []map[string]any
	for _, f := range fresh {
		d := respond.Decide(policy, vmName, groups, f.Kind)
		if len(d.Actions) == 1 && d.Actions[0] == respond.Record {
			continue
		}
		lists = append(lists, d.Actions)
		why = append(why, map[string]any{"kind": f.Kind, "summary": f.Summary, "rule": d.Rule, "actions": d.Actions})
	}
	if len(lists) == 0 {
		return
	}
	job := &response{vm: vmName, actions: respond.Merge(lists...), findings: why, results: map[string]string{}}
	r.mu.Lock()
	if r.pending >= maxPendingResponses {
		r.mu.Unlock()
		r.log.Error("response skipped: too many responses pending", "vm", vmName, "pending", maxPendingResponses)
		job.skipAll(fmt.Sprintf("skipped: %d responses pending", maxPendingResponses))
		r.finish(job)
		return
	}
	r.pending++
	m := r.vmMu[vmName]
	if m == nil {
		m = &sync.Mutex{}
		r.vmMu[vmName] = m
	}
	r.mu.Unlock()
	go func() {
		m.Lock()
		defer m.Unlock()
		r.run(job)
		r.mu.Lock()
		r.pending--
		r.mu.Unlock()
	}()
}

// poolsOf returns the VM's pool and its ancestors, nearest first, without
// the root.
func (r *responder) poolsOf(vmName string) []string {
	if r.pools == nil {
		return nil
	}
	v, err := r.mgr.Get(context.Background(), vmName)
	if err != nil {
		return nil
	}
	t := r.pools()
	var out []string
	for name := v.Spec.Pool; name != "" && name != pool.RootName && len(out) < maxPoolDepth; {
		out = append(out, name)
		p, ok := t.Lookup(name)
		if !ok {
			break
		}
		name = p.Parent
	}
	return out
}

// response is one response to the new findings of one scan.
type response struct {
	vm       string
	actions  []respond.Action
	findings []map[string]any
	results  map[string]string // action → "ok", "already ..." or the error
	dumpSHA  string
	dumpFile string
	dumpSize int64
}

func (j *response) skipAll(why string) {
	for _, a := range j.actions {
		j.results[string(a)] = why
	}
}

// run carries out a response's actions in order, each audited.
func (r *responder) run(j *response) {
	ctx, cancel := context.WithTimeout(context.Background(), responseTimeout)
	defer cancel()
	for _, a := range j.actions {
		res, err := r.act(ctx, j, a)
		if err != nil {
			res = "failed: " + err.Error()
		}
		j.results[string(a)] = res
	}
	r.finish(j)
}

// act runs one action with its audit records: an intent before, the
// outcome after. A dump copies the tenant's memory, so, like the API's
// dump, it is not taken when its intent cannot be recorded; isolating,
// pausing and stopping only take capabilities away and go ahead, the
// failure logged loudly.
func (r *responder) act(ctx context.Context, j *response, a respond.Action) (string, error) {
	action := "respond" + strings.ToUpper(string(a[:1])) + string(a[1:])
	detail := j.describe()
	if err := r.auditAppend(action, j.vm, api.ResultIntent, detail); err != nil && a == respond.Dump {
		return "", fmt.Errorf("not taken: the audit log cannot record it: %w", err)
	}
	var res string
	var err error
	switch a {
	case respond.Isolate:
		res, err = r.isolate(ctx, j.vm, detail)
	case respond.Dump:
		res, err = r.dump(ctx, j)
		if err == nil {
			detail += fmt.Sprintf("; %s, %d bytes, sha256 %s", j.dumpFile, j.dumpSize, j.dumpSHA)
		}
	case respond.Pause:
		res, err = r.pause(ctx, j.vm)
	case respond.Stop:
		res, err = r.stop(ctx, j.vm)
	default:
		err = fmt.Errorf("unknown action %q", a)
	}
	result := audit.ResultOK
	if err != nil {
		result, detail = audit.ResultFailed, detail+": "+err.Error()
	}
	r.auditAppend(action, j.vm, result, detail)
	return res, err
}

func (r *responder) auditAppend(action, vmName, result, detail string) error {
	if r.audit == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.audit.Append(ctx, audit.Record{Time: time.Now().UTC(), User: respondUser, Action: action,
		Object: "/vms/" + vmName, Result: result, Source: "daemon", Detail: detail})
	if err != nil {
		r.log.Error("AUDIT APPEND FAILED", "op", action, "user", respondUser, "object", "/vms/"+vmName, "err", err)
	}
	return err
}

// describe names the findings a response answers, for the audit log.
func (j *response) describe() string {
	var parts []string
	for _, f := range j.findings {
		parts = append(parts, fmt.Sprintf("finding %s: %s (rule %s)", f["kind"], f["summary"], f["rule"]))
	}
	return strings.Join(parts, "; ")
}

func (r *responder) isolate(ctx context.Context, vmName, why string) (string, error) {
	b, _ := json.Marshal(map[string]any{"since": time.Now().UTC(), "why": why})
	if err := putObject(ctx, r.st, quarantineKind, vmName, b); err != nil {
		// The switch is cut anyway; only a daemon restart would lift it.
		r.log.Error("quarantine not stored: a daemon restart lifts it", "vm", vmName, "err", err)
		r.sw.SetPortQuarantine(vmName, true)
		return "", fmt.Errorf("ports quarantined, but not stored: %w", err)
	}
	if !r.sw.SetPortQuarantine(vmName, true) {
		return "already quarantined", nil
	}
	return "ok", nil
}

func (r *responder) pause(ctx context.Context, vmName string) (string, error) {
	if v, err := r.mgr.Get(ctx, vmName); err == nil && v.State == vm.Paused {
		return "already paused", nil
	}
	if _, err := r.mgr.Pause(ctx, vmName); err != nil {
		return "", err
	}
	return "ok", nil
}

// stop powers the VM off at once (force): a compromised guest is not
// asked. Its findings are forgotten, so that they count as new if they
// appear again after a restart.
func (r *responder) stop(ctx context.Context, vmName string) (string, error) {
	if v, err := r.mgr.Get(ctx, vmName); err == nil && !v.State.Active() {
		return "already stopped", nil
	}
	if _, err := r.mgr.Stop(ctx, vmName, true, 0); err != nil {
		return "", err
	}
	r.mu.Lock()
	delete(r.seen, vmName)
	r.mu.Unlock()
	r.saveSeen(vmName, nil)
	return "ok", nil
}

// dump writes the VM's memory as a LiME image to
// STATE/forensics/VM/TIME.lime (0600 in 0700 directories), hashing it as
// it goes.
func (r *responder) dump(ctx context.Context, j *response) (string, error) {
	f, size, err := r.mgr.OpenMemory(ctx, j.vm)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dir := filepath.Join(r.dumpDir, j.vm)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.lime"))
	if err != nil {
		return "", err
	}
	if len(old) >= maxDumpsPerVM {
		return "", fmt.Errorf("%d images of this VM already in %s: remove some to allow more", len(old), dir)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err == nil && fs.Bavail*uint64(fs.Bsize) < size+dumpFreeMargin {
		return "", fmt.Errorf("%s has %d bytes free, a %d-byte image must leave %d", dir, fs.Bavail*uint64(fs.Bsize), size, dumpFreeMargin)
	}
	path := filepath.Join(dir, time.Now().UTC().Format("20060102T150405.000000000Z")+".lime")
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := writeLiME(ctx, io.MultiWriter(out, h), f, size)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	j.dumpSHA, j.dumpFile, j.dumpSize = hex.EncodeToString(h.Sum(nil)), path, n
	return "ok", nil
}

// writeLiME writes guest RAM (the descriptor f, size bytes, in microvm's
// layout) as LiME ranges to w and returns the bytes written.
func writeLiME(ctx context.Context, w io.Writer, f *os.File, size uint64) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &countWriter{w: bw}
	for _, rg := range mem.MicrovmLayout(size).Ranges {
		if rg.Size == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return cw.n, err
		}
		src := io.NewSectionReader(f, int64(rg.Offset), int64(rg.Size))
		if err := lime.WriteRange(cw, lime.Range{Start: rg.GPA, End: rg.GPA + rg.Size - 1}, src); err != nil {
			return cw.n, err
		}
	}
	return cw.n, bw.Flush()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// finish records the response as a monitoring event.
func (r *responder) finish(j *response) {
	var done []string
	for _, a := range j.actions {
		done = append(done, string(a)+" "+j.results[string(a)])
	}
	ev := map[string]any{"findings": j.findings, "actions": j.actions, "results": j.results}
	if j.dumpSHA != "" {
		ev["dump_sha256"], ev["dump_file"], ev["dump_bytes"] = j.dumpSHA, j.dumpFile, j.dumpSize
	}
	kinds := make([]string, 0, len(j.findings))
	for _, f := range j.findings {
		kinds = append(kinds, fmt.Sprint(f["kind"]))
	}
	r.log.Warn("introspection response", "vm", j.vm, "findings", strings.Join(kinds, ","), "done", strings.Join(done, "; "))
	r.record(api.MonitorEvent{Time: time.Now().UTC(), VM: j.vm, Kind: "response",
		Summary: "response to " + strings.Join(kinds, ", ") + ": " + strings.Join(done, "; "), Evidence: ev, Scan: "response"})
}
