package ipssvc

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/bulwark-project/bulwark/internal/ipsstage"
)

// Notice is an IPS alert summarised for the monitoring events
// (`bulwark events`): one per rule, VM pair and action per NoticeEvery,
// with the number of alerts it stands for.
type Notice struct {
	VM       string         // the VM that sent the matching traffic ("" when it came from the uplink: then the receiver)
	Kind     string         // "ips_alert" or "ips_block"
	Summary  string         // "sid 2100498 GPL ATTACK_RESPONSE id check returned root: web1 -> db1 (tcp/80)"
	Evidence map[string]any // sid, rev, signature, action, src/dest VM, ports, network, count
}

// NoticeEvery bounds how often one rule, VM pair and action is raised as
// a monitoring event; the EVE log has every alert.
const NoticeEvery = time.Minute

// maxNoticeKeys bounds the dedupe table.
const maxNoticeKeys = 4096

// Alerts turns the stage's events into EVE lines, monitoring notices and
// log lines. Its Sink runs on the stage's one delivery goroutine.
type Alerts struct {
	eve       io.Writer
	log       *slog.Logger
	mu        sync.Mutex
	notify    func(Notice)
	last      map[noticeKey]*noticeState
	writeErrs uint64
}

type noticeKey struct {
	sid          uint32
	src, dst, ac string
}

type noticeState struct {
	at    time.Time
	count int
}

// NewAlerts writes EVE lines to eve (a rotating log).
func NewAlerts(eve io.Writer, log *slog.Logger) *Alerts {
	return &Alerts{eve: eve, log: log, last: map[noticeKey]*noticeState{}}
}

// SetNotify installs the monitoring-event callback (nil: none).
func (a *Alerts) SetNotify(f func(Notice)) {
	a.mu.Lock()
	a.notify = f
	a.mu.Unlock()
}

// eveSummary is what the notices need from an EVE alert line.
type eveSummary struct {
	SrcIP    string `json:"src_ip"`
	SrcPort  int    `json:"src_port"`
	DestIP   string `json:"dest_ip"`
	DestPort int    `json:"dest_port"`
	Proto    string `json:"proto"`
	Alert    struct {
		Action    string `json:"action"`
		SID       uint32 `json:"signature_id"`
		Rev       uint32 `json:"rev"`
		Signature string `json:"signature"`
		Category  string `json:"category"`
		Severity  int    `json:"severity"`
	} `json:"alert"`
	Bulwark struct {
		Network  string `json:"network"`
		SrcVM    string `json:"src_vm"`
		SrcPort  string `json:"src_port"`
		DestVM   string `json:"dest_vm"`
		DestPort string `json:"dest_port"`
		Mode     string `json:"mode"`
	} `json:"bulwark"`
}

// Sink is the stage's Options.Sink.
func (a *Alerts) Sink(ev *ipsstage.Event) {
	line := ev.EVE()
	if _, err := a.eve.Write(append(line, '\n')); err != nil {
		a.mu.Lock()
		a.writeErrs++
		n := a.writeErrs
		a.mu.Unlock()
		if n == 1 || n%1000 == 0 {
			a.log.Error("ips: EVE log write failed", "err", err, "failures", n)
		}
	}
	var s eveSummary
	if err := json.Unmarshal(line, &s); err != nil {
		return
	}
	a.notice(&s, time.Now())
}

func (a *Alerts) notice(s *eveSummary, now time.Time) {
	a.mu.Lock()
	notify := a.notify
	k := noticeKey{sid: s.Alert.SID, src: s.Bulwark.SrcVM, dst: s.Bulwark.DestVM, ac: s.Alert.Action}
	st := a.last[k]
	if st != nil && now.Sub(st.at) < NoticeEvery {
		st.count++
		a.mu.Unlock()
		return
	}
	count := 1
	if st != nil {
		count += st.count
	}
	if st == nil && len(a.last) >= maxNoticeKeys {
		for key, v := range a.last {
			if now.Sub(v.at) >= NoticeEvery {
				delete(a.last, key)
			}
		}
		if len(a.last) >= maxNoticeKeys {
			a.last = map[noticeKey]*noticeState{}
		}
	}
	a.last[k] = &noticeState{at: now}
	a.mu.Unlock()

	kind := "ips_alert"
	if s.Alert.Action == "blocked" {
		kind = "ips_block"
	}
	from, to := orAddr(s.Bulwark.SrcVM, s.SrcIP), orAddr(s.Bulwark.DestVM, s.DestIP)
	summary := fmt.Sprintf("sid %d %s: %s -> %s (%s/%d), %s", s.Alert.SID, s.Alert.Signature, from, to, s.Proto, s.DestPort, s.Alert.Action)
	a.log.Warn("ips alert", "sid", s.Alert.SID, "rev", s.Alert.Rev, "signature", s.Alert.Signature, "action", s.Alert.Action,
		"network", s.Bulwark.Network, "src", from, "src_port", s.Bulwark.SrcPort, "dest", to, "dest_port", s.Bulwark.DestPort,
		"proto", s.Proto, "since_last", count)
	if notify == nil {
		return
	}
	vmName := s.Bulwark.SrcVM
	if vmName == "" {
		vmName = s.Bulwark.DestVM
	}
	notify(Notice{VM: vmName, Kind: kind, Summary: summary, Evidence: map[string]any{
		"sid": s.Alert.SID, "rev": s.Alert.Rev, "signature": s.Alert.Signature, "category": s.Alert.Category,
		"severity": s.Alert.Severity, "action": s.Alert.Action, "network": s.Bulwark.Network,
		"src_vm": s.Bulwark.SrcVM, "dest_vm": s.Bulwark.DestVM, "src_ip": s.SrcIP, "dest_ip": s.DestIP,
		"src_port": s.SrcPort, "dest_port": s.DestPort, "proto": s.Proto, "alerts": count,
	}})
}

func orAddr(vm, ip string) string {
	if vm != "" {
		return vm
	}
	return ip
}
