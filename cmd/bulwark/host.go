package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/hostcheck"
)

func init() { extraCommands = append(extraCommands, hostCmd) }

func hostCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Inspect this host (runs locally; no daemon needed)",
	}
	cmd.AddCommand(hostCheckCmd(g))
	return cmd
}

func hostCheckCmd(g *globals) *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Show which host protections are active and which are missing",
		Long: `Probe this host for the protections Bulwark relies on: the accelerator,
cgroups, seccomp, namespaces, openat2, pidfds, the Unix datagram queue, a
TPM, kernel hardening sysctls, root, and the systemd unit. Each check says
ok, missing, warn or info, why, and what to do.

Required checks (cgroup, seccomp, namespaces, openat2, pidfd, root) are the
ones the daemon cannot jail VMs without. The exit status is 0 unless
--strict is given and a required check is missing. Run as root to see what
the daemon will see. See docs/hardening.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep := hostcheck.NewReport(hostcheck.Evaluate(hostcheck.Gather()))
			err := g.emit(cmd.OutOrStdout(), rep, func(tw *tabwriter.Writer) { printHostReport(tw, rep) })
			if err != nil {
				return err
			}
			if strict && len(rep.RequiredMissing) > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "exit 1 if a required check is missing")
	return cmd
}

func printHostReport(tw *tabwriter.Writer, rep hostcheck.Report) {
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Status, c.Detail)
		if c.Remedy != "" {
			fmt.Fprintf(tw, "\t\t  fix: %s\n", c.Remedy)
		}
	}
	fmt.Fprintf(tw, "\n%d ok, %d missing, %d warn, %d info", rep.Counts[hostcheck.StatusOK],
		rep.Counts[hostcheck.StatusMissing], rep.Counts[hostcheck.StatusWarn], rep.Counts[hostcheck.StatusInfo])
	if len(rep.RequiredMissing) > 0 {
		fmt.Fprintf(tw, "; required and missing: %s\n", strings.Join(rep.RequiredMissing, ", "))
	} else {
		fmt.Fprintln(tw, "; every required check passed")
	}
}
