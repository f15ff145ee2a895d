package console

import (
	"time"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// PolicyFor resolves a VM's stored console policy against the daemon's
// defaults: fields the VM leaves zero take the default.
func PolicyFor(p *vm.ConsolePolicy, def Policy) Policy {
	out := def
	if p == nil {
		return out
	}
	if p.MaxSessions > 0 {
		out.MaxSessions = p.MaxSessions
	}
	switch p.Clipboard {
	case "allow":
		out.Clipboard = true
	case "deny":
		out.Clipboard = false
	}
	out.RecordInput = out.RecordInput || p.RecordInput
	if d, err := time.ParseDuration(p.IdleTimeout); err == nil && d > 0 {
		out.IdleTimeout = d
	}
	if d, err := time.ParseDuration(p.MaxDuration); err == nil && d > 0 {
		out.MaxDuration = d
	}
	if p.InputMaxKeys > 0 {
		out.Input.MaxKeys = p.InputMaxKeys
	}
	if p.InputBurst > 0 {
		out.Input.Burst = p.InputBurst
	}
	if p.InputRate > 0 {
		out.Input.Rate = p.InputRate
	}
	out.Input.Clipboard = out.Clipboard
	return out
}
