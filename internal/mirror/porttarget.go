package mirror

import (
	"fmt"
	"time"

	"github.com/bulwark-project/bulwark/internal/netsw"
)

// lookupInterval is how often a port target that is not attached (its VM
// is stopped) is looked for again; copies meanwhile are dropped.
const lookupInterval = time.Second

// portTarget delivers a session's copies to a monitor port.
type portTarget struct {
	sw      *netsw.Switch
	network string
	name    string      // "VM/nicN"
	port    *netsw.Port // nil until found; replaced when its VM restarts
	looked  time.Time   // the last failed lookup
}

func newPortTarget(sw *netsw.Switch, s *Session) *portTarget {
	return &portTarget{sw: sw, network: s.Network, name: s.Target.Port}
}

func (t *portTarget) write(r *record) error {
	p := t.port
	if p == nil || p.Closed() {
		if p == nil && time.Since(t.looked) < lookupInterval {
			return fmt.Errorf("monitor port %s is not attached", t.name)
		}
		if p = t.sw.LookupPort(t.network, t.name); p == nil {
			t.port, t.looked = nil, time.Now()
			return fmt.Errorf("monitor port %s is not attached", t.name)
		}
		t.port = p
	}
	if err := p.SendMirrorCopy(r.frame()); err != nil {
		return fmt.Errorf("monitor port %s: %w", t.name, err)
	}
	return nil
}

func (t *portTarget) tick() error     { return nil }
func (t *portTarget) close() error    { return nil }
func (t *portTarget) files() []string { return nil }
