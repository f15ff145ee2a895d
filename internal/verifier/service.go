// Package verifier is Bulwark's remote attestation verifier: a service of
// its own, with its own store, normally on another machine than the hosts
// it judges. It registers hosts (binding each AK to its EK with a
// credential challenge), polls them for quotes over fresh nonces, checks
// each quote, event log and report against a versioned policy of golden
// values, and keeps a verdict per host and per VM. A change of verdict is
// audited, sent to webhooks and pushed to the host's daemon, which refuses
// VM starts while it is untrusted.
package verifier

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/attest/quote"
	"github.com/bulwark-project/bulwark/internal/audit"
)

// DefaultInterval is how often each host is polled.
const DefaultInterval = 2 * time.Second

// Config configures a Service.
type Config struct {
	// Dir holds the store and the audit log (created 0700).
	Dir string
	// Interval between polls of one host (default DefaultInterval); each
	// wait is jittered by ±10 % so hosts do not poll in lockstep.
	Interval time.Duration
	// Timeout bounds one poll (default: the interval, at least 1 s).
	Timeout time.Duration
	// Webhooks are called on every change of a host's verdict.
	Webhooks []Webhook
	// Dial reaches a host (default DialAPI).
	Dial Dialer
	Log  *slog.Logger
}

// HostStatus is a host with its latest verdict and polling counters.
type HostStatus struct {
	Host
	Verdict *attest.Verdict `json:"verdict,omitempty"`
	// Since is when the verdict's status last changed.
	Since     time.Time `json:"since,omitempty"`
	LastPoll  time.Time `json:"last_poll,omitempty"`
	LatencyMs float64   `json:"latency_ms"`
	Polls     uint64    `json:"polls"`
	Failures  uint64    `json:"failures"`
	// Pushed says whether the daemon acknowledged the current verdict.
	Pushed bool `json:"pushed"`
}

// Service is a running verifier.
type Service struct {
	cfg   Config
	st    *store
	audit *audit.Log
	hooks *webhooks

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	pol     *policy.Policy
	polDoc  []byte
	hosts   map[string]*hostState
	closing bool
}

type hostState struct {
	h      Host
	cl     HostClient
	cancel context.CancelFunc
	pollMu sync.Mutex // one poll at a time

	mu       sync.Mutex
	st       HostStatus
	lastSent string // the verdict key the daemon acknowledged
}

// Open opens the store and audit log in cfg.Dir, loads the current
// policy and starts polling every registered host.
func Open(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = max(cfg.Interval, time.Second)
	}
	if cfg.Dial == nil {
		cfg.Dial = DialAPI
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	st, err := openStore(ctx, cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	adir := filepath.Join(cfg.Dir, "audit")
	key, err := audit.LoadOrCreateKey(adir)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("verifier: audit key: %w", err)
	}
	al, err := audit.Open(ctx, adir, key, 100, audit.WithLogger(cfg.Log))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("verifier: audit log: %w", err)
	}
	if d := al.Damage(); len(d) > 0 {
		st.Close()
		al.Close()
		return nil, fmt.Errorf("verifier: audit log %s is damaged (%d problems, first: %v): refusing to run on it", adir, len(d), d[0])
	}
	s := &Service{cfg: cfg, st: st, audit: al, hosts: map[string]*hostState{}, hooks: newWebhooks(cfg.Webhooks, cfg.Log)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if v, doc, err := st.latestPolicy(ctx); err == nil {
		p, err := policy.Parse(doc)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("verifier: stored policy version %d: %w", v, err)
		}
		s.pol, s.polDoc = p, doc
	} else if !errors.Is(err, ErrNotFound) {
		s.Close()
		return nil, err
	}
	hosts, err := st.hosts(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	for _, h := range hosts {
		if err := s.startHost(h); err != nil {
			cfg.Log.Error("verifier: cannot poll host", "host", h.Name, "err", err)
		}
	}
	return s, nil
}

// Close stops polling and closes the store and the audit log. Later calls
// return the first call's result.
func (s *Service) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Service) close() error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.hooks.close()
	err := s.st.Close()
	if aerr := s.audit.Close(); err == nil {
		err = aerr
	}
	return err
}

func (s *Service) record(actor, action, object, result, detail string) {
	_, err := s.audit.Append(context.Background(), audit.Record{Time: time.Now().UTC(), User: actor, Action: action,
		Object: object, Result: result, Source: audit.SourceUnix, Detail: detail})
	if err != nil {
		s.cfg.Log.Error("VERIFIER AUDIT APPEND FAILED", "action", action, "object", object, "err", err)
	}
}

var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Registration is a request to register a host.
type Registration struct {
	Name  string `json:"name"`
	URL   string `json:"url"`
	Token string `json:"token"`
	CA    string `json:"ca,omitempty"`
	// ReplaceKeys allows a host already registered with other TPM keys
	// (a new machine, a cleared TPM) to be registered again.
	ReplaceKeys bool `json:"replace_keys,omitempty"`
}

// AddHost registers a host: it fetches the host's EK and AK, sends a
// credential encrypted to the EK for the AK's name, and accepts the keys
// only when the host returns the secret, which only the TPM holding that
// EK with that AK loaded can recover. Then polling starts.
func (s *Service) AddHost(ctx context.Context, reg Registration, actor string) (HostStatus, error) {
	obj := "host/" + reg.Name
	st, err := s.addHost(ctx, reg)
	if err != nil {
		s.record(actor, "verifier.host.add", obj, audit.ResultFailed, err.Error())
		s.cfg.Log.Warn("verifier: host registration refused", "host", reg.Name, "url", reg.URL, "reason", err)
		return HostStatus{}, err
	}
	s.record(actor, "verifier.host.add", obj, audit.ResultOK, fmt.Sprintf("url %s, %s, AK bound to EK by credential activation", reg.URL, st.Keys.TPM))
	return st, nil
}

// ErrInvalid marks a request refused for its content.
var ErrInvalid = errors.New("invalid request")

func (s *Service) addHost(ctx context.Context, reg Registration) (HostStatus, error) {
	if !hostName.MatchString(reg.Name) {
		return HostStatus{}, fmt.Errorf("%w: host name %q: want 1-63 letters, digits, '.', '_' or '-'", ErrInvalid, reg.Name)
	}
	h := Host{Name: reg.Name, URL: reg.URL, CA: reg.CA, Token: reg.Token}
	cl, err := s.cfg.Dial(h)
	if err != nil {
		return HostStatus{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	keys, err := cl.Keys(ctx)
	if err != nil {
		return HostStatus{}, fmt.Errorf("host %s: read keys: %w", reg.Name, err)
	}
	s.mu.Lock()
	old, exists := s.hosts[reg.Name]
	s.mu.Unlock()
	if exists && !reg.ReplaceKeys && !slices.Equal(old.h.Keys.EKPublic, keys.EKPublic) {
		return HostStatus{}, fmt.Errorf("%w: host %s is registered with another endorsement key (another TPM or machine): re-register with replace_keys if this is intended", ErrInvalid, reg.Name)
	}
	secret, ch, err := quote.NewChallenge(keys)
	if err != nil {
		return HostStatus{}, fmt.Errorf("host %s: keys refused: %w", reg.Name, err)
	}
	got, err := cl.Activate(ctx, ch)
	if err != nil {
		return HostStatus{}, fmt.Errorf("host %s: credential activation failed (the AK is not in the TPM of that EK?): %w", reg.Name, err)
	}
	if subtle.ConstantTimeCompare(got, secret) != 1 {
		return HostStatus{}, fmt.Errorf("host %s: credential activation returned the wrong secret: the AK is not bound to that EK", reg.Name)
	}
	h.Keys, h.RegisteredAt = keys, time.Now().UTC()
	if err := s.st.putHost(ctx, h); err != nil {
		return HostStatus{}, err
	}
	if exists {
		s.stopHost(reg.Name)
	}
	if err := s.startHost(h); err != nil {
		return HostStatus{}, err
	}
	s.cfg.Log.Info("verifier: host registered", "host", h.Name, "url", h.URL, "tpm", keys.TPM, "hardware_rooted", keys.HardwareRooted)
	return s.hostStatus(h.Name)
}

// RemoveHost stops polling a host and forgets it.
func (s *Service) RemoveHost(ctx context.Context, name, actor string) error {
	err := s.st.deleteHost(ctx, name)
	if err == nil {
		s.stopHost(name)
	}
	res := audit.ResultOK
	if err != nil {
		res = audit.ResultFailed
	}
	s.record(actor, "verifier.host.remove", "host/"+name, res, errString(err))
	return err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (s *Service) startHost(h Host) error {
	cl, err := s.cfg.Dial(h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	hs := &hostState{h: h, cl: cl, cancel: cancel, st: HostStatus{Host: h}}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		cancel()
		return errors.New("verifier is closing")
	}
	s.hosts[h.Name] = hs
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.pollLoop(ctx, hs)
	}()
	return nil
}

func (s *Service) stopHost(name string) {
	s.mu.Lock()
	hs := s.hosts[name]
	delete(s.hosts, name)
	s.mu.Unlock()
	if hs != nil {
		hs.cancel()
	}
}

// jitter returns d ± 10 %.
func jitter(d time.Duration) time.Duration {
	span := int64(d) / 5
	if span <= 0 {
		return d
	}
	n, err := rand.Int(rand.Reader, big.NewInt(span))
	if err != nil {
		return d
	}
	return d - time.Duration(span/2) + time.Duration(n.Int64())
}

func (s *Service) pollLoop(ctx context.Context, hs *hostState) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.Poll(ctx, hs)
		t.Reset(jitter(s.cfg.Interval))
	}
}

// PollNow polls one host at once and returns its verdict.
func (s *Service) PollNow(ctx context.Context, name string) (attest.Verdict, error) {
	s.mu.Lock()
	hs := s.hosts[name]
	s.mu.Unlock()
	if hs == nil {
		return attest.Verdict{}, fmt.Errorf("host %q: %w", name, ErrNotFound)
	}
	return s.Poll(ctx, hs), nil
}

// Poll asks the host for evidence over a fresh nonce, judges it and
// records the verdict.
func (s *Service) Poll(ctx context.Context, hs *hostState) attest.Verdict {
	hs.pollMu.Lock()
	defer hs.pollMu.Unlock()
	s.mu.Lock()
	pol := s.pol
	s.mu.Unlock()
	polVersion := 0
	if pol != nil {
		polVersion = pol.Version
	}
	start := time.Now()
	nonce := make([]byte, attest.NonceSize)
	var v attest.Verdict
	if _, err := rand.Read(nonce); err != nil {
		v = unknown(hs.h.Name, polVersion, start.UTC(), "nonce", err.Error())
	} else {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		ev, err := hs.cl.Quote(pctx, nonce)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return attest.Verdict{Host: hs.h.Name, Status: attest.Unknown}
			}
			// Unreachable is never trusted.
			v = unknown(hs.h.Name, polVersion, time.Now().UTC(), "reachability", "no evidence from the host: "+err.Error())
		} else {
			v = Check(hs.h, pol, nonce, ev, time.Now().UTC())
		}
	}
	s.apply(ctx, hs, v, time.Since(start))
	return v
}

// verdictKey is what makes two verdicts the same for change detection:
// statuses and reasons, not times.
func verdictKey(v attest.Verdict) string {
	v.Time = time.Time{}
	b, _ := json.Marshal(v)
	return string(b)
}

func (s *Service) apply(ctx context.Context, hs *hostState, v attest.Verdict, latency time.Duration) {
	key := verdictKey(v)
	hs.mu.Lock()
	prev := hs.st.Verdict
	changed := prev == nil || verdictKey(*prev) != key
	hs.st.Verdict = &v
	hs.st.LastPoll = v.Time
	hs.st.LatencyMs = float64(latency.Microseconds()) / 1000
	hs.st.Polls++
	if v.Status != attest.Trusted {
		hs.st.Failures++
	}
	if prev == nil || prev.Status != v.Status {
		hs.st.Since = v.Time
	}
	needPush := hs.lastSent != key
	hs.mu.Unlock()

	if changed {
		prevStatus := attest.Status("")
		if prev != nil {
			prevStatus = prev.Status
		}
		if err := s.st.addVerdict(ctx, v); err != nil {
			s.cfg.Log.Error("verifier: store verdict", "host", v.Host, "err", err)
		}
		attrs := []any{"host", v.Host, "status", v.Status, "previous", prevStatus, "policy_version", v.PolicyVersion, "reasons", reasonLine(v)}
		if v.Status == attest.Trusted {
			s.cfg.Log.Info("verifier: verdict changed", attrs...)
		} else {
			s.cfg.Log.Warn("verifier: verdict changed", attrs...)
		}
		s.record("verifier", "verifier.verdict", "host/"+v.Host, string(v.Status), fmt.Sprintf("was %s; %s", orNone(string(prevStatus)), reasonLine(v)))
		s.hooks.send(hookEvent{Event: "verdict_changed", Host: v.Host, Previous: prevStatus, Status: v.Status, Verdict: v})
	}
	if needPush && v.Status != attest.Unknown || needPush && changed {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := hs.cl.PushVerdict(pctx, v)
		cancel()
		hs.mu.Lock()
		if err == nil {
			hs.lastSent = key
		}
		hs.st.Pushed = err == nil
		hs.mu.Unlock()
		if err != nil && changed {
			s.cfg.Log.Warn("verifier: could not push the verdict to the host", "host", v.Host, "status", v.Status, "err", err)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// reasonLine summarises a verdict's reasons for a log line or an audit
// record.
func reasonLine(v attest.Verdict) string {
	var parts []string
	add := func(vm string, r attest.Reason) {
		p := r.Component + ": " + r.Message
		if vm != "" {
			p = "vm " + vm + " " + p
		}
		if r.Found != "" {
			p += " (found " + r.Found + ")"
		}
		parts = append(parts, p)
	}
	for _, r := range v.Reasons {
		add("", r)
	}
	for _, vv := range v.VMs {
		for _, r := range vv.Reasons {
			add(vv.Name, r)
		}
	}
	if len(parts) > 6 {
		parts = append(parts[:6], fmt.Sprintf("and %d more", len(parts)-6))
	}
	if len(parts) == 0 {
		return "no reasons"
	}
	return strings.Join(parts, "; ")
}

// SetPolicy parses, validates and stores a new policy document; its
// version must be greater than the current one. It applies from the next
// poll of each host.
func (s *Service) SetPolicy(ctx context.Context, doc []byte, actor string) (int, error) {
	p, err := policy.Parse(doc)
	if err != nil {
		s.record(actor, "verifier.policy.set", "policy", audit.ResultFailed, err.Error())
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := s.st.addPolicy(ctx, p.Version, doc, actor); err != nil {
		s.record(actor, "verifier.policy.set", "policy", audit.ResultFailed, err.Error())
		return 0, err
	}
	s.mu.Lock()
	s.pol, s.polDoc = p, doc
	s.mu.Unlock()
	s.record(actor, "verifier.policy.set", "policy", audit.ResultOK, fmt.Sprintf("version %d", p.Version))
	s.cfg.Log.Info("verifier: policy set", "version", p.Version, "by", actor)
	return p.Version, nil
}

// Policy returns the current policy document and its version.
func (s *Service) Policy() (int, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pol == nil {
		return 0, nil, fmt.Errorf("no policy is set: %w", ErrNotFound)
	}
	return s.pol.Version, s.polDoc, nil
}

func (s *Service) hostStatus(name string) (HostStatus, error) {
	s.mu.Lock()
	hs := s.hosts[name]
	s.mu.Unlock()
	if hs == nil {
		return HostStatus{}, fmt.Errorf("host %q: %w", name, ErrNotFound)
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.st, nil
}

// Status returns every host's status, sorted by name.
func (s *Service) Status() []HostStatus {
	s.mu.Lock()
	names := make([]string, 0, len(s.hosts))
	for n := range s.hosts {
		names = append(names, n)
	}
	s.mu.Unlock()
	slices.Sort(names)
	out := make([]HostStatus, 0, len(names))
	for _, n := range names {
		if st, err := s.hostStatus(n); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// History returns up to n stored verdict changes of a host, newest first.
func (s *Service) History(ctx context.Context, host string, n int) ([]attest.Verdict, error) {
	return s.st.verdicts(ctx, host, n)
}
