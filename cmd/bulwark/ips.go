package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/ips/engine"
	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

func init() { extraCommands = append(extraCommands, ipsCmd) }

func ipsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ips",
		Short: "Intrusion prevention at every vNIC (Suricata rules, docs/ips.md)",
		Long: `The switch's IPS inspects what the firewall admitted, at every VM NIC of the
networks it is enabled on, with Suricata rules: "ips rules load" the rule
files, "ips mode NETWORK block|alert" where to inspect, then read "ips alerts"
(Suricata EVE JSON) and "ips status". "ips replay" runs a pcap through the
same engine offline.`,
	}
	cmd.AddCommand(ipsReplayCmd(g), ipsRulesCmd(g), ipsStatusCmd(g), ipsModeCmd(g), ipsAlertsCmd(g))
	return cmd
}

// replayReport is the summary `ips replay` prints to stderr (stdout may
// carry the EVE lines); --stats-json prints it as JSON.
type replayReport struct {
	Rules struct {
		Files   []string       `json:"files"`
		Loaded  int            `json:"loaded"`
		Skipped map[string]int `json:"skipped"`
		Errors  map[string]int `json:"errors"`
	} `json:"rules"`
	Packets      uint64            `json:"packets"`
	Bytes        uint64            `json:"bytes"`
	Alerts       uint64            `json:"alerts"`
	Flows        uint64            `json:"flows"`
	NotInspected map[string]uint64 `json:"not_inspected,omitempty"`
	Seconds      float64           `json:"seconds"`
}

func ipsReplayCmd(g *globals) *cobra.Command {
	var ruleFiles []string
	var classFile, out string
	var statsJSON bool
	var opts engine.EVEOptions
	cmd := &cobra.Command{
		Use:   "replay --rules FILE [--rules FILE...] PCAP",
		Short: "Run a pcap through the IPS engine and write Suricata EVE JSON alerts",
		Long: `Load Suricata rules, run a classic pcap through the same detection engine
the switch uses (flows, TCP reassembly, HTTP/DNS/TLS parsing, the prefilter
and full rule evaluation) and write one EVE JSON line per alert, in
Suricata's eve.json alert format, so results can be compared with
Suricata's. Runs locally; no daemon is needed.

Rules that use a keyword the engine does not support are skipped; the load
summary (loaded, skipped and refused rules by reason) and the replay
counters go to stderr. The classtype descriptions (alert.category) come
from --classification, else from a classification.config next to the first
rules file, if there is one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(ruleFiles) == 0 {
				return errors.New("ips replay: at least one --rules FILE is needed")
			}
			classes, err := loadClassifications(classFile, ruleFiles[0])
			if err != nil {
				return err
			}
			var rep replayReport
			l := rules.NewLoader(&rules.Options{Classes: classes, Disabled: engine.Disabled})
			for _, f := range ruleFiles {
				if err := addRuleFile(l, f); err != nil {
					return err
				}
			}
			set, st := l.Finish()
			rep.Rules.Files, rep.Rules.Loaded, rep.Rules.Skipped, rep.Rules.Errors = ruleFiles, st.Loaded, st.Skipped, st.Errors
			if st.Limit != "" {
				return fmt.Errorf("ips replay: rules: %s", st.Limit)
			}
			e, err := engine.New(set, classes, nil)
			if err != nil {
				return fmt.Errorf("ips replay: %w", err)
			}
			pf, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("ips replay: %w", err)
			}
			defer pf.Close()
			var w io.Writer = cmd.OutOrStdout()
			if out != "" && out != "-" {
				of, err := os.Create(out)
				if err != nil {
					return fmt.Errorf("ips replay: %w", err)
				}
				defer of.Close()
				w = of
			}
			if opts.PktSrc == "" {
				opts.PktSrc = "wire/pcap"
			}
			det := engine.NewDetector(e, engine.Config{})
			rs, err := engine.Replay(bufio.NewReaderSize(pf, 1<<20), det, engine.NewEVEWriter(w, opts))
			ds := det.Stats()
			rep.Packets, rep.Bytes, rep.Alerts, rep.Flows, rep.NotInspected = rs.Packets, rs.Bytes, rs.Alerts, ds.Flows, ds.NotInspected
			rep.Seconds = rs.Elapsed.Seconds()
			sg := *g
			sg.output = "table"
			if statsJSON {
				sg.output = "json"
			}
			if perr := sg.emit(cmd.ErrOrStderr(), rep, func(tw *tabwriter.Writer) { printReplayReport(tw, &rep) }); perr != nil && err == nil {
				err = perr
			}
			if err != nil {
				return fmt.Errorf("ips replay %s: %w", args[0], err)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&ruleFiles, "rules", nil, "Suricata rules file (repeatable)")
	cmd.Flags().StringVar(&classFile, "classification", "", "classification.config for alert.category")
	// -o/--output names the EVE file here (as Suricata's -l/eve.json);
	// it shadows the global output-format flag, so the summary's format
	// is chosen with --stats-json.
	cmd.Flags().StringVarP(&out, "output", "o", "-", "EVE JSON output file (- for stdout)")
	cmd.Flags().BoolVar(&statsJSON, "stats-json", false, "print the load and replay summary (stderr) as JSON")
	cmd.Flags().BoolVar(&opts.Packet, "packet", false, "add the frame (base64) and packet_info to each alert")
	cmd.Flags().BoolVar(&opts.Ether, "ether", false, "add the Ethernet addresses to each alert")
	cmd.Flags().BoolVar(&opts.Inline, "inline", false, "report drop/reject matches as blocked (Suricata's IPS mode)")
	return cmd
}

func addRuleFile(l *rules.Loader, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("ips replay: %w", err)
	}
	defer f.Close()
	if err := l.Add(f, filepath.Base(name)); err != nil {
		return fmt.Errorf("ips replay: %w", err)
	}
	return nil
}

// loadClassifications reads the named classification.config, else the one
// next to the first rules file when it exists, else none.
func loadClassifications(name, firstRules string) (rules.Classifications, error) {
	explicit := name != ""
	if !explicit {
		name = filepath.Join(filepath.Dir(firstRules), "classification.config")
	}
	data, err := os.ReadFile(name)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("ips replay: %w", err)
	}
	c, err := rules.ParseClassifications(data)
	if err != nil {
		return nil, fmt.Errorf("ips replay: %s: %w", name, err)
	}
	return c, nil
}

func printReplayReport(tw *tabwriter.Writer, rep *replayReport) {
	skipped, errs := 0, 0
	for _, n := range rep.Rules.Skipped {
		skipped += n
	}
	for _, n := range rep.Rules.Errors {
		errs += n
	}
	fmt.Fprintf(tw, "rules\tloaded %d\tskipped %d\trefused %d\n", rep.Rules.Loaded, skipped, errs)
	for _, rc := range rules.Top(rep.Rules.Skipped) {
		fmt.Fprintf(tw, "  skipped\t%s\t%d\n", rc.Reason, rc.Count)
	}
	for _, rc := range rules.Top(rep.Rules.Errors) {
		fmt.Fprintf(tw, "  refused\t%s\t%d\n", rc.Reason, rc.Count)
	}
	mb := float64(rep.Bytes) / 1e6
	rate := 0.0
	if rep.Seconds > 0 {
		rate = mb / rep.Seconds
	}
	fmt.Fprintf(tw, "replay\t%d packets, %.1f MB\t%d flows\t%d alerts\t%.2f s (%.1f MB/s)\n",
		rep.Packets, mb, rep.Flows, rep.Alerts, rep.Seconds, rate)
	reasons := make([]string, 0, len(rep.NotInspected))
	for r := range rep.NotInspected {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(tw, "  not inspected\t%s\t%d\n", r, rep.NotInspected[r])
	}
}
