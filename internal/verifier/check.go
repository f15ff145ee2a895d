package verifier

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/attest/quote"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

// Bounds on what a host sends (a compromised host is hostile).
const (
	maxReport   = 4 << 20
	maxEventLog = 64 << 20
)

// Check judges one host's evidence, answered to nonce, against the policy:
// the quote's signature by the host's registered AK, the nonce and report
// bound into it, the PCR digest, the event log's replay to the quoted PCRs,
// then the log's and the report's content against the golden values. Every
// failure is a reason in the verdict; nothing here does I/O.
func Check(host Host, pol *policy.Policy, nonce []byte, ev attest.Evidence, now time.Time) attest.Verdict {
	fail := func(component, msg string, expected []string, found string) attest.Verdict {
		v := attest.Verdict{Host: host.Name, Status: attest.Untrusted, Time: now}
		if pol != nil {
			v.PolicyVersion = pol.Version
		}
		v.Reasons = []attest.Reason{{Component: component, Message: msg, Expected: expected, Found: found}}
		return v
	}
	if pol == nil {
		return attest.Verdict{Host: host.Name, Status: attest.Unknown, Time: now,
			Reasons: []attest.Reason{{Component: "policy", Message: "no policy is set: nothing to compare the evidence with"}}}
	}
	pcrs, err := quote.Verify(host.Keys.AK.Public, ev, nonce)
	if err != nil {
		return fail("quote", strings.TrimPrefix(err.Error(), "quote: "), nil, "")
	}
	if len(ev.EventLog) > maxEventLog {
		return fail("event-log", fmt.Sprintf("event log of %d bytes exceeds %d", len(ev.EventLog), maxEventLog), nil, "")
	}
	events, err := eventlog.Parse(ev.EventLog)
	if err != nil {
		return fail("event-log", err.Error(), nil, "")
	}
	replay := eventlog.Replay(events)
	for _, i := range attest.QuotedPCRs {
		want, got := pcrs[i], replay[uint32(i)]
		if want != got {
			return fail("event-log", fmt.Sprintf("the event log does not replay to quoted PCR %d: it was edited, truncated or is not this host's", i),
				[]string{hex.EncodeToString(want[:])}, hex.EncodeToString(got[:]))
		}
	}
	rep, err := decodeReport(ev.Report)
	if err != nil {
		return fail("report", err.Error(), nil, "")
	}
	v := policy.Evaluate(pol, events, rep, now)
	v.Host, v.Time = host.Name, now
	return v
}

// decodeReport parses a host's report strictly and bounded.
func decodeReport(b []byte) (attest.Report, error) {
	var rep attest.Report
	if len(b) > maxReport {
		return rep, fmt.Errorf("report of %d bytes exceeds %d", len(b), maxReport)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		return rep, fmt.Errorf("report: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return rep, fmt.Errorf("report: trailing data")
	}
	return rep, nil
}

// unknown is the verdict for a host whose evidence could not be obtained.
func unknown(host string, polVersion int, now time.Time, component, msg string) attest.Verdict {
	return attest.Verdict{Host: host, Status: attest.Unknown, Time: now, PolicyVersion: polVersion,
		Reasons: []attest.Reason{{Component: component, Message: msg}}}
}
