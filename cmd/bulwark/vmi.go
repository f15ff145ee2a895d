package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
)

func vmiCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "vmi", Short: "Look inside running guests from outside (introspection; needs Monitor.Read)"}
	view := func(use, short, op string, table func(tw *tabwriter.Writer, raw json.RawMessage)) *cobra.Command {
		return &cobra.Command{
			Use: use + " VM", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out struct {
					Millis float64         `json:"millis"`
					Items  json.RawMessage `json:"items"`
				}
				if err := g.client().Do(cmd.Context(), "GET", "/api/v1/vms/"+args[0]+"/vmi/"+op, nil, &out); err != nil {
					return err
				}
				return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
					table(tw, out.Items)
					fmt.Fprintf(tw, "(%.1f ms in the monitor)\n", out.Millis)
				})
			},
		}
	}
	procTable := func(tw *tabwriter.Writer, raw json.RawMessage) {
		var ps []guest.Process
		json.Unmarshal(raw, &ps)
		fmt.Fprintln(tw, "PID\tTGID\tPPID\tUID\tGID\tSTATE\tCOMM")
		for _, p := range ps {
			comm := p.Comm
			if p.KernelThread {
				comm = "[" + comm + "]"
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%s\n", p.PID, p.TGID, p.PPID, p.UID, p.GID, p.State, comm)
		}
	}
	modTable := func(tw *tabwriter.Writer, raw json.RawMessage) {
		var ms []guest.Module
		json.Unmarshal(raw, &ms)
		fmt.Fprintln(tw, "NAME\tBASE\tSIZE\tSTATE")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%#x\t%d\t%d\n", m.Name, m.Base, m.Size, m.State)
		}
	}
	cmd.AddCommand(
		view("ps", "Processes from the guest kernel's task list", "ps", procTable),
		view("pids", "Tasks from the PID table (a second, independent view)", "pids", procTable),
		view("modules", "Kernel modules from the module list (lsmod's view)", "modules", modTable),
		view("sysfs-modules", "Kernel modules from /sys/module's kobjects (a second view)", "sysfs-modules", modTable),
		view("syscalls", "sys_call_table, each entry named and checked against the kernel image", "syscalls", func(tw *tabwriter.Writer, raw json.RawMessage) {
			var sc []guest.Syscall
			json.Unmarshal(raw, &sc)
			fmt.Fprintln(tw, "NR\tHANDLER\tOK")
			for _, s := range sc {
				ok := "ok"
				if s.Hooked {
					ok = "HOOKED (image: " + s.Expected + "; points into " + s.Region + ")"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\n", s.NR, s.Symbol, ok)
			}
		}),
		view("idt", "Interrupt descriptor table: every present vector against the handler the kernel image defines", "idt", func(tw *tabwriter.Writer, raw json.RawMessage) {
			var v struct {
				Gates []guest.IDTEntry `json:"gates"`
				Notes []string         `json:"notes"`
			}
			json.Unmarshal(raw, &v)
			fmt.Fprintln(tw, "VECTOR\tHANDLER\tEXPECTED\tOK")
			for _, e := range v.Gates {
				ok := "ok"
				if !e.OK {
					ok = "BAD: " + e.Reason + " (" + e.Region + ")"
				}
				exp := e.Expected
				if exp == "" {
					exp = "(function start)"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", e.Vector, e.Symbol, exp, ok)
			}
			for _, n := range v.Notes {
				fmt.Fprintf(tw, "note: %s\n", n)
			}
		}),
		vmiInfoCmd(g), vmiCheckCmd(g), vmiDumpCmd(g))
	cmd.AddCommand(vmiHookCmds(g)...)
	return cmd
}

func vmiInfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "info VM", Short: "The guest kernel the monitor attached to (release, build id, KASLR offset)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var info map[string]any
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/vms/"+args[0]+"/vmi/info", nil, &info); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), info, func(tw *tabwriter.Writer) {
				for _, k := range []string{"release", "build_id", "kernel_offset", "phys_base", "page_offset_base", "la57", "attached", "baseline_pages"} {
					fmt.Fprintf(tw, "%s:\t%v\n", k, info[k])
				}
			})
		},
	}
}

func vmiCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "check VM", Short: "Run every detection now; new findings become events", Args: cobra.ExactArgs(1),
		Long: `Run every detection on the running guest now and print the report (findings,
what was scanned, how long it took). New findings become monitoring events.

Exit status, the same rule as the views (vmi ps, ...): 0 when the check ran
completely, with or without findings; 1 when it could not run (the VM is not
running, the guest kernel is not up yet, no permission) or when any part of
it could not be read (a scan_error finding: the report is still printed, and
says which view failed).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var rep map[string]any
			if err := g.client().Do(cmd.Context(), "POST", "/api/v1/vms/"+args[0]+"/vmi/check", nil, &rep); err != nil {
				return err
			}
			fs, _ := rep["findings"].([]any)
			scanErrors := 0
			for _, f := range fs {
				if m, _ := f.(map[string]any); m["kind"] == "scan_error" {
					scanErrors++
				}
			}
			err := g.emit(cmd.OutOrStdout(), rep, func(tw *tabwriter.Writer) {
				if len(fs) == 0 {
					fmt.Fprintf(tw, "clean: no findings (%v ms; scanned %v)\n", rep["millis"], rep["scanned"])
					return
				}
				fmt.Fprintln(tw, "KIND\tSUMMARY")
				for _, f := range fs {
					m, _ := f.(map[string]any)
					fmt.Fprintf(tw, "%v\t%v\n", m["kind"], m["summary"])
				}
			})
			if err != nil {
				return err
			}
			if scanErrors > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "error: %d part(s) of the check could not run (scan_error)\n", scanErrors)
				return exitError{1}
			}
			return nil
		},
	}
}

// outputIsFile marks a command whose -o names an output file rather than
// the output format.
const outputIsFile = "bulwark/output-is-file"

func vmiDumpCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use: "dump VM -o FILE", Short: "Write guest memory as a LiME image (Volatility 3 opens it; needs Monitor.Respond)", Args: cobra.ExactArgs(1),
		Annotations: map[string]string{outputIsFile: "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			// -o is the global output-format flag; for dump, a value that is
			// not a format is the output file, so `vmi dump VM -o FILE` works.
			if out == "" && g.output != "table" && g.output != "json" {
				out = g.output
			}
			if out == "" {
				return fmt.Errorf("an output file is required: -o FILE (or --file FILE)")
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			n, err := g.client().Download(cmd.Context(), "/api/v1/vms/"+args[0]+"/vmi/dump", f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(out)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d bytes to %s (LiME)\n", n, out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "file", "f", "", "output file (0600)")
	return cmd
}

func eventsCmd(g *globals) *cobra.Command {
	var vmName string
	cmd := &cobra.Command{
		Use: "events", Short: "Monitoring events (introspection findings), JSON lines", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.client().Raw(cmd.Context(), "GET", "/api/v1/events?bytes=1048576")
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n") {
				if line == "" || (vmName != "" && !strings.Contains(line, `"vm":"`+vmName+`"`)) {
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), line)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&vmName, "vm", "", "only this VM's events")
	return cmd
}
