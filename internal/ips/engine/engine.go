package engine

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/bulwark-project/bulwark/internal/ips/prefilter"
	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// Disabled lists the rule keywords whose buffers this engine does not fill
// (no certificate parsing, no JA3S); pass it as rules.Options.Disabled so
// such rules are skipped at load with a reason instead of never matching.
var Disabled = []string{
	"tls.cert_subject", "tls.cert_issuer", "tls.cert_serial", "tls.certs", "ja3s.hash",
}

// Engine is a compiled rule set: the rules, their prefilter and what the
// evaluation needs precomputed per rule. It is immutable and safe for
// concurrent use; each inspecting goroutine holds its own Detector.
type Engine struct {
	rules []*rules.Rule
	meta  []ruleMeta
	pf    *prefilter.Prefilter
	// bitNames maps flowbit ids back to names (for tests and stats).
	bitNames []string
	// uncond holds, per app proto, the header-only rules (prefilter's
	// Unconditional) in evaluation order.
	uncond [4][]int32
	// hdr indexes the transport-level header-only rules by address.
	hdr headerRules
}

// ruleMeta is per-rule data derived once at build.
type ruleMeta struct {
	// order sorts a packet's candidates as Suricata does: pass rules
	// first, then drop/reject, then alert; within an action, rules that
	// only set flowbits before rules that read them.
	order    uint32
	category string
	bits     []bitOp
	// needBits: the rule has isset/isnotset conditions.
	needBits bool
	// stream: the rule may match the reassembled stream (tcp rules with
	// payload content and no no_stream); packet: it may match a packet.
	stream, packet bool
}

// bitOp is a flowbits option with names resolved to ids.
type bitOp struct {
	cmd rules.FlowbitCmd
	ids []int
	and bool
}

// MaxFlowbits bounds the distinct flowbit names a rule set may use; each
// flow holds one bit per name.
const MaxFlowbits = 1 << 16

// New compiles a loaded rule set. classes gives the alert.category text
// of each classtype (nil: categories are empty, as Suricata without a
// classification.config); pfOpts bounds the prefilter (nil: defaults).
func New(set *rules.Set, classes rules.Classifications, pfOpts *prefilter.Options) (*Engine, error) {
	pf, err := prefilter.FromSet(set, pfOpts)
	if err != nil {
		return nil, err
	}
	e := &Engine{rules: set.Rules, pf: pf, meta: make([]ruleMeta, len(set.Rules))}
	bitID := map[string]int{}
	for i, r := range set.Rules {
		m := &e.meta[i]
		if c, ok := classes[r.Classtype]; ok {
			m.category = c.Description
		}
		setsOnly := len(r.Flowbits) > 0
		for _, fb := range r.Flowbits {
			op := bitOp{cmd: fb.Cmd, and: fb.And}
			for _, n := range fb.Names {
				id, ok := bitID[n]
				if !ok {
					if len(bitID) >= MaxFlowbits {
						return nil, fmt.Errorf("engine: more than %d flowbit names", MaxFlowbits)
					}
					id = len(bitID)
					bitID[n] = id
					e.bitNames = append(e.bitNames, n)
				}
				op.ids = append(op.ids, id)
			}
			if fb.Cmd == rules.FlowbitIsSet || fb.Cmd == rules.FlowbitIsNotSet {
				m.needBits = true
				setsOnly = false
			}
			m.bits = append(m.bits, op)
		}
		var act uint32
		switch r.Action {
		case rules.ActionPass:
			act = 0
		case rules.ActionDrop, rules.ActionReject:
			act = 1
		default:
			act = 2
		}
		fbRank := uint32(1)
		if setsOnly {
			fbRank = 0
		} else if m.needBits {
			fbRank = 2
		}
		m.order = act<<28 | fbRank<<26 | uint32(i)
		m.packet = r.Proto != rules.ProtoTCPStream && !r.Flow.OnlyStream
		m.stream = r.Proto != rules.ProtoTCPPkt && !r.Flow.NoStream && r.Dsize == nil
	}
	for app := range e.uncond {
		ids := append([]int32(nil), pf.Unconditional(rules.AppProto(app))...)
		e.sortCandidates(ids)
		e.uncond[app] = ids
	}
	e.hdr = buildHeaderRules(e.rules, e.uncond[rules.AppNone])
	return e, nil
}

// Rules returns the compiled rules, indexed as in alerts.
func (e *Engine) Rules() []*rules.Rule { return e.rules }

// Prefilter returns the engine's prefilter.
func (e *Engine) Prefilter() *prefilter.Prefilter { return e.pf }

func (e *Engine) sortCandidates(ids []int32) {
	slices.SortFunc(ids, func(a, b int32) int { return cmp.Compare(e.meta[a].order, e.meta[b].order) })
}
