package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/engine"
	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/monitor"
)

// extraModules are modules of the Debian cloud kernel that load on any
// machine and do nothing until used (code pages, tables, filesystems'
// character sets, crypto algorithms), so a guest can carry as many as a
// benchmark wants. The first one is the one a churn run unloads and loads
// again. Names without '-', so the file name is the module name.
var extraModules = []string{
	"nls_cp437", "nls_ascii", "nls_utf8", "nls_cp1250", "nls_cp1251", "nls_cp1255", "nls_cp737", "nls_cp775",
	"nls_cp850", "nls_cp852", "nls_cp855", "nls_cp857", "nls_cp860", "nls_cp861", "nls_cp862", "nls_cp863",
	"nls_cp864", "nls_cp865", "nls_cp866", "nls_cp869", "nls_cp874", "nls_cp932", "nls_cp936", "nls_cp949",
	"nls_cp950", "blowfish_generic", "camellia_generic", "cast5_generic", "cast6_generic", "des_generic",
	"fcrypt", "md4", "michael_mic", "rmd160", "serpent_generic", "sha3_generic", "streebog_generic",
	"twofish_generic", "wp512", "xxhash_generic", "dummy", "ifb", "nlmon", "veth", "crc7", "ts_bm", "ts_fsm", "ts_kmp",
}

// churnModule is the module a churn run unloads and loads again, or "".
func (c config) churnModule() string {
	if c.modules == 0 {
		return ""
	}
	return extraModules[0]
}

const churnTag = "vmibench-churn"

// churnScript starts procs sleeping processes and then, in a loop of about
// five iterations a second: ten short-lived processes (subshells that exit
// at once) and one that lives a second, so tasks are created and reaped
// while checks run; every 5th iteration module is unloaded and loaded
// again; every 10th, ftrace's function tracer (filtered to one function)
// is switched on or off through tracefs, when the kernel has it. Each
// iteration prints the loop line the console reader counts and a churn
// line with the totals.
func churnScript(procs int, module string) string {
	return fmt.Sprintf(`n=0
while [ $n -lt %d ]; do sleep 100000 & n=$((n+1)); done
read -r up rest </proc/uptime
echo "%s $n $up $(ls -d /proc/[0-9]* | wc -l)"
MOD=%s
T=/sys/kernel/tracing
mount -t tracefs nodev $T 2>/dev/null
ft=0
[ -w $T/current_tracer ] && echo do_sys_openat2 >$T/set_ftrace_filter 2>/dev/null && ft=1
i=0 forks=0 mods=0 modfail=0 ftr=0 on=0
while :; do
	i=$((i+1))
	k=0
	while [ $k -lt 10 ]; do ( : ); k=$((k+1)); done
	sleep 1 &
	forks=$((forks+11))
	if [ -n "$MOD" ] && [ $((i %% 5)) -eq 0 ]; then
		if rmmod $MOD && insmod /lib/modules/$MOD.ko; then mods=$((mods+1)); else modfail=$((modfail+1)); fi
	fi
	if [ $ft = 1 ] && [ $((i %% 10)) -eq 0 ]; then
		if [ $on = 0 ]; then echo function >$T/current_tracer && on=1; else echo nop >$T/current_tracer && on=0; fi
		ftr=$((ftr+1))
	fi
	read -r up rest </proc/uptime
	echo "%s $i $up"
	echo "%s forks=$forks modcycles=$mods modfail=$modfail ftrace=$ft toggles=$ftr"
	sleep 0.2
done
`, procs, markProcs, module, spinTag, churnTag)
}

var churnLineRe = regexp.MustCompile(churnTag + ` forks=(\d+) modcycles=(\d+) modfail=(\d+) ftrace=(\d) toggles=(\d+)`)

// churnResult is a churn run: what changed in the guest and what the
// checks found (on a clean guest every finding is a false positive).
type churnResult struct {
	Seconds     float64        `json:"seconds"`
	Checks      int            `json:"checks"`
	CheckErrors int            `json:"check_errors"` // requests that failed outright
	Findings    map[string]int `json:"findings_by_kind"`
	Texts       []string       `json:"finding_texts,omitempty"` // distinct, the first 20
	CheckMS     []float64      `json:"check_monitor_ms"`
	// The guest's own counts at the end (its last churn line).
	Forks       int    `json:"forks"`
	ModCycles   int    `json:"module_cycles"`
	ModFailures int    `json:"module_failures"`
	Module      string `json:"module,omitempty"`
	Modules     int    `json:"modules"` // loaded at the end
	Tasks       int    `json:"tasks"`   // the task list's length at the end
	Ftrace      bool   `json:"ftrace"`
	FtraceFlips int    `json:"ftrace_toggles"`
}

// churn checks the churning guest every churnInterval for churn.
func (b *bencher) churn(ctx context.Context) error {
	c := &churnResult{Findings: map[string]int{}, Module: b.cfg.churnModule()}
	b.res.Churn = c
	e := engine.New(b.cacheDir)
	defer e.Handle(monitor.Request{Op: "forget", VM: vmName}, nil)
	start := time.Now()
	end := start.Add(b.cfg.churn)
	next := start
	lastLog := start
	for time.Now().Before(end) {
		_, out, err := b.call(ctx, e, "check")
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			c.CheckErrors++
			c.Findings["request_error"]++
			if len(c.Texts) < 20 {
				c.Texts = append(c.Texts, "request_error: "+err.Error())
			}
		} else if r, ok := out.(engine.Report); ok {
			c.Checks++
			c.CheckMS = append(c.CheckMS, r.Millis)
			for _, f := range r.Findings {
				c.Findings[f.Kind]++
				if t := f.Kind + ": " + f.Summary; len(c.Texts) < 20 && !slices.Contains(c.Texts, t) {
					c.Texts = append(c.Texts, t)
				}
			}
		}
		b.churnGuestCounts(c)
		if time.Since(lastLog) >= time.Minute {
			lastLog = time.Now()
			fmt.Fprintf(os.Stderr, "vmi:   churn %.0fs: %d checks, findings %v, guest forks %d, module cycles %d, ftrace toggles %d\n",
				time.Since(start).Seconds(), c.Checks, c.Findings, c.Forks, c.ModCycles, c.FtraceFlips)
		}
		next = next.Add(b.cfg.churnInterval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		select {
		case <-time.After(time.Until(minTime(next, end))):
		case <-b.g.exited:
			return fmt.Errorf("qemu exited during the churn run")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.Seconds = time.Since(start).Seconds()
	b.churnGuestCounts(c)
	if _, out, err := b.call(ctx, e, "modules"); err == nil {
		if t, ok := out.(engine.Timed); ok {
			if ms, ok := t.Items.([]guest.Module); ok {
				c.Modules = len(ms)
			}
		}
	}
	if _, out, err := b.call(ctx, e, "ps"); err == nil {
		if t, ok := out.(engine.Timed); ok {
			if ps, ok := t.Items.([]guest.Process); ok {
				c.Tasks = len(ps)
			}
		}
	}
	if c.Forks == 0 {
		return fmt.Errorf("the guest printed no churn line; console tail:\n%s", b.g.con.tail())
	}
	return nil
}

// churnGuestCounts reads the guest's totals from its last churn line.
func (b *bencher) churnGuestCounts(c *churnResult) {
	m := churnLineRe.FindAllStringSubmatch(b.g.con.tail(), -1)
	if len(m) == 0 {
		return
	}
	last := m[len(m)-1]
	n := func(i int) int { v, _ := strconv.Atoi(last[i]); return v }
	c.Forks, c.ModCycles, c.ModFailures, c.Ftrace, c.FtraceFlips = n(1), n(2), n(3), last[4] == "1", n(5)
}
