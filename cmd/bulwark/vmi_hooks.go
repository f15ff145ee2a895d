package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
)

// vmiHookCmds are `vmi bpf` and `vmi hooks`: the modern hook points read
// from guest memory (the monitor's "bpf" and "hooks" operations).
func vmiHookCmds(g *globals) []*cobra.Command {
	bpf := &cobra.Command{
		Use: "bpf VM", Short: "Loaded eBPF programs and links, with their attach points", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Millis float64       `json:"millis"`
				Items  guest.BPFView `json:"items"`
			}
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/vms/"+args[0]+"/vmi/bpf", nil, &out); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				v := out.Items
				fmt.Fprintln(tw, "ID\tTYPE\tNAME\tTAG\tATTACHED TO\tJIT")
				for _, p := range v.Programs {
					flag := ""
					if p.Tracing {
						flag = " (tracing)"
					}
					jit := p.Func
					if !p.Jited {
						jit = "interpreted " + p.FuncSymbol
					}
					fmt.Fprintf(tw, "%d\t%s%s\t%s\t%s\t%s\t%s\n", p.ID, p.Type, flag, orDash(p.Name), p.Tag, orDash(p.AttachTo), jit)
				}
				if len(v.Links) > 0 {
					fmt.Fprintln(tw, "\nLINK\tTYPE\tPROG\tTARGET")
					for _, l := range v.Links {
						fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", l.ID, l.Type, l.ProgID, orDash(l.Target))
					}
				}
				printViewErrors(tw, v.Errors)
				fmt.Fprintf(tw, "(%d programs, %d links; %.1f ms in the monitor)\n", len(v.Programs), len(v.Links), out.Millis)
			})
		},
	}
	hooks := &cobra.Command{
		Use: "hooks VM", Short: "Kprobes, ftrace ops, netfilter and LSM hooks, each handler's owner (kernel, module or unknown)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Millis float64        `json:"millis"`
				Items  guest.HookView `json:"items"`
			}
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/vms/"+args[0]+"/vmi/hooks", nil, &out); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				v := out.Items
				fmt.Fprintln(tw, "POINT\tTARGET\tHANDLER\tOWNER\tDETAIL")
				for _, h := range v.Hooks {
					owner := h.Owner
					if !h.Known {
						owner = "UNKNOWN"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Point, h.Target, h.Symbol, owner, orDash(h.Detail))
				}
				printViewErrors(tw, v.Errors)
				var counts []string
				for _, p := range guest.HookPoints {
					counts = append(counts, fmt.Sprintf("%s %d", p, v.Counts[p]))
				}
				fmt.Fprintf(tw, "(%s; %.1f ms in the monitor)\n", strings.Join(counts, ", "), out.Millis)
			})
		},
	}
	return []*cobra.Command{bpf, hooks}
}

// printErrors lists the parts of a view that could not be read.
func printViewErrors(tw *tabwriter.Writer, errs map[string]string) {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "ERROR %s:\t%s\n", k, errs[k])
	}
}
