package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/respond"
)

// withResponseCmds adds the response commands (the response policy,
// quarantines) to the monitor command. `bulwark monitor` without a
// subcommand stays the introspection process the daemon starts.
func withResponseCmds(g *globals, monitor *cobra.Command) *cobra.Command {
	monitor.Hidden = false
	monitor.Short = "Responses to introspection findings: response policy, quarantines (bare `monitor` is the daemon's introspection process)"
	monitor.AddCommand(responseCmd(g), quarantineCmd(g), releaseCmd(g))
	return monitor
}

func responseCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "response", Short: "The response policy: finding kinds to actions per VM, resource pool or globally"}
	show := &cobra.Command{
		Use: "show", Short: "Show the response policy (Monitor.Read)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var p respond.Policy
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/monitor/response-policy", nil, &p); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), &p, func(tw *tabwriter.Writer) { policyTable(tw, &p) })
		},
	}
	set := &cobra.Command{
		Use:   "set FILE",
		Short: "Replace the response policy with a JSON file ('-': standard input) (Monitor.Respond)",
		Long: `Replace the response policy. The file is one JSON object:

  {"global": {"*": ["record"], "kernel_text_modified": ["dump", "pause"]},
   "pools":  {"prod": {"syscall_hook": ["isolate", "dump"]}},
   "vms":    {"web": {"syscall_hook": ["dump", "isolate"]}}}

Keys of each scope are finding kinds (syscall_hook, hidden_process, ...) or
"*"; actions are record, isolate, dump, pause and stop ("record" alone).
The VM's rules win over its pool's (nearest pool first), which win over the
global ones; within a scope an exact kind wins over "*".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readPolicyFile(args[0])
			if err != nil {
				return err
			}
			// Checked here first for a clear message; the daemon checks again.
			if _, err := respond.Parse(data); err != nil {
				return err
			}
			var p respond.Policy
			if err := g.client().Do(cmd.Context(), "PUT", "/api/v1/monitor/response-policy", json.RawMessage(data), &p); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), &p, func(tw *tabwriter.Writer) { policyTable(tw, &p) })
		},
	}
	cmd.AddCommand(show, set)
	return cmd
}

func readPolicyFile(name string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, respond.MaxPolicyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > respond.MaxPolicyBytes {
		return nil, fmt.Errorf("%s: longer than %d bytes", name, respond.MaxPolicyBytes)
	}
	return data, nil
}

// policyTable prints one line per rule, most specific scope first.
func policyTable(tw *tabwriter.Writer, p *respond.Policy) {
	fmt.Fprintln(tw, "SCOPE\tKIND\tACTIONS")
	rows := func(scope string, r respond.Rules) {
		kinds := make([]string, 0, len(r))
		for k := range r {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			as := make([]string, len(r[k]))
			for i, a := range respond.Merge(r[k]) {
				as[i] = string(a)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", scope, k, strings.Join(as, ","))
		}
	}
	for _, scopes := range []struct {
		prefix string
		m      map[string]respond.Rules
	}{{"vm ", p.VMs}, {"pool ", p.Pools}} {
		names := make([]string, 0, len(scopes.m))
		for n := range scopes.m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			rows(scopes.prefix+n, scopes.m[n])
		}
	}
	rows("global", p.Global)
	fmt.Fprintln(tw, "(anything else: record)")
}

func quarantineCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "quarantine", Short: "List the VMs whose network a response cut (Monitor.Read)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var q api.QuarantineList
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/monitor/quarantine", nil, &q); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), q, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "QUARANTINED")
				for _, v := range q.VMs {
					fmt.Fprintln(tw, v)
				}
			})
		},
	}
}

func releaseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "release VM", Short: "Lift a VM's quarantine: its switch ports forward again (Monitor.Respond; audited)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.ReleaseResult
			if err := g.client().Do(cmd.Context(), "POST", "/api/v1/vms/"+args[0]+"/monitor/release", nil, &res); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				if res.Quarantined {
					fmt.Fprintf(tw, "%s: quarantine lifted\n", res.VM)
				} else {
					fmt.Fprintf(tw, "%s was not quarantined\n", res.VM)
				}
			})
		},
	}
}
