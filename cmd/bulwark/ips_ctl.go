package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// The IPS's daemon side: rule files, mode, status, alerts.

func ipsRulesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Rule files loaded into the switch's IPS"}
	var class, name string
	load := &cobra.Command{
		Use:   "load FILE...",
		Short: "Upload rule files (each kept under its base name) and print loaded/skipped counts by reason",
		Long: `Upload Suricata rule files to the daemon. Each is kept under its base name
(load it again to replace it; "ips rules remove NAME" removes it) and the
whole set is compiled again; a file is kept only when the set compiles.
Rules with a keyword the engine does not support are skipped and counted by
reason; malformed rules are counted apart. --classification uploads a
classification.config (alert.category) first.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name != "" && len(args) != 1 {
				return fmt.Errorf("--name needs exactly one FILE")
			}
			if class != "" {
				if _, err := uploadRuleFile(cmd, g, class, "classification.config", false); err != nil {
					return err
				}
			}
			var reps []any
			// All files but the last are stored with compilation deferred:
			// the set is compiled once, with the last.
			for i, f := range args {
				n := filepath.Base(f)
				if name != "" {
					n = name
				}
				rep, err := uploadRuleFile(cmd, g, f, n, i < len(args)-1)
				if err != nil {
					return err
				}
				reps = append(reps, rep)
			}
			return g.emit(cmd.OutOrStdout(), reps, func(tw *tabwriter.Writer) { printRuleFiles(tw, reps, true) })
		},
	}
	load.Flags().StringVar(&class, "classification", "", "classification.config to upload first (alert.category)")
	load.Flags().StringVar(&name, "name", "", "name to keep the file under (default: its base name)")
	var sid uint32
	var hits bool
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List rule files, or rules with --sid/--hits", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if sid == 0 && !hits {
				out, err := g.call(cmd.Context(), "GET", "/api/v1/ips", nil)
				if err != nil {
					return err
				}
				m, _ := out.(map[string]any)
				files := asList(m["files"])
				return g.emit(cmd.OutOrStdout(), files, func(tw *tabwriter.Writer) { printRuleFiles(tw, files, false) })
			}
			q := url.Values{}
			if sid != 0 {
				q.Set("sid", strconv.FormatUint(uint64(sid), 10))
			}
			if hits {
				q.Set("hits", "1")
			}
			q.Set("limit", strconv.Itoa(limit))
			out, err := g.call(cmd.Context(), "GET", "/api/v1/ips/rules?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "SID\tREV\tACTION\tHITS\tLAST HIT\tMSG")
				for _, x := range asList(out) {
					r, _ := x.(map[string]any)
					fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%v\n", count(r["sid"]), count(r["rev"]), r["action"], count(r["hits"]), orDash(r["last_hit"]), r["msg"])
				}
			})
		},
	}
	list.Flags().Uint32Var(&sid, "sid", 0, "show this rule")
	list.Flags().BoolVar(&hits, "hits", false, "only rules that matched, with their hit counts")
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many rules")
	remove := &cobra.Command{
		Use: "remove NAME", Short: "Remove a rule file and recompile without it", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := g.call(cmd.Context(), "DELETE", "/api/v1/ips/rules/"+url.PathEscape(args[0]), nil)
			return err
		},
	}
	stats := &cobra.Command{
		Use: "stats", Short: "Loaded, skipped and malformed rule counts by reason", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/ips", nil)
			if err != nil {
				return err
			}
			m, _ := out.(map[string]any)
			sub := obj{"loaded": m["loaded"], "skipped": m["skipped"], "errors": m["errors"], "duplicates": m["duplicates"], "compile_ms": m["compile_ms"]}
			return g.emit(cmd.OutOrStdout(), sub, func(tw *tabwriter.Writer) { printRuleTotals(tw, m) })
		},
	}
	cmd.AddCommand(load, list, remove, stats)
	return cmd
}

func uploadRuleFile(cmd *cobra.Command, g *globals, path, name string, deferCompile bool) (any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var out any
	q := ""
	if deferCompile {
		q = "?compile=0"
	}
	if err := g.client().Upload(cmd.Context(), "PUT", "/api/v1/ips/rules/"+url.PathEscape(name)+q, f, fi.Size(), &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// topReasons prints a reason→count map, largest first.
func topReasons(m any, n int) string {
	mm, _ := m.(map[string]any)
	type rc struct {
		r string
		c float64
	}
	var l []rc
	for k, v := range mm {
		c, _ := v.(float64)
		l = append(l, rc{k, c})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].c > l[j].c || (l[i].c == l[j].c && l[i].r < l[j].r) })
	var parts []string
	for i, x := range l {
		if i == n {
			parts = append(parts, fmt.Sprintf("+%d more", len(l)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s", x.r, count(x.c)))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func sumCounts(m any) float64 {
	mm, _ := m.(map[string]any)
	var t float64
	for _, v := range mm {
		c, _ := v.(float64)
		t += c
	}
	return t
}

func printRuleFiles(tw *tabwriter.Writer, files []any, reasons bool) {
	fmt.Fprintln(tw, "FILE\tBYTES\tRULES\tLOADED\tSKIPPED\tMALFORMED\tSKIPPED BY REASON")
	for _, x := range files {
		m, _ := x.(map[string]any)
		fmt.Fprintf(tw, "%v\t%s\t%s\t%s\t%s\t%s\t%s\n", m["name"], count(m["bytes"]), count(m["rules"]), count(m["loaded"]),
			count(sumCounts(m["skipped"])), count(sumCounts(m["errors"])), topReasons(m["skipped"], 6))
		if reasons {
			if w := asList(m["warnings"]); len(w) > 0 {
				for i, s := range w {
					if i == 5 {
						fmt.Fprintf(tw, "  (%d more warnings)\n", len(w)-5)
						break
					}
					fmt.Fprintf(tw, "  warning: %v\n", s)
				}
			}
		}
	}
}

func printRuleTotals(tw *tabwriter.Writer, m map[string]any) {
	fmt.Fprintf(tw, "loaded\t%s\n", count(m["loaded"]))
	fmt.Fprintf(tw, "skipped\t%s\t%s\n", count(sumCounts(m["skipped"])), topReasons(m["skipped"], 12))
	fmt.Fprintf(tw, "malformed\t%s\t%s\n", count(sumCounts(m["errors"])), topReasons(m["errors"], 6))
	fmt.Fprintf(tw, "duplicates\t%s\n", count(m["duplicates"]))
	fmt.Fprintf(tw, "compile\t%v ms\n", m["compile_ms"])
	if e, ok := m["last_error"].(string); ok && e != "" {
		fmt.Fprintf(tw, "last error\t%s\n", e)
	}
}

func ipsStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "Rules loaded, where the IPS inspects (mode per network and group) and its counters", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/ips", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				m, _ := out.(map[string]any)
				printRuleTotals(tw, m)
				pol, _ := m["policy"].(map[string]any)
				nets, _ := pol["networks"].(map[string]any)
				fmt.Fprintln(tw, "\nNETWORK\tMODE\tOVERLOAD")
				for _, k := range sortedKeys(nets) {
					np, _ := nets[k].(map[string]any)
					fmt.Fprintf(tw, "%s\t%v\t%v\n", k, np["mode"], orDash(np["overload"]))
				}
				if len(nets) == 0 {
					fmt.Fprintln(tw, "(none: the IPS inspects no network; see ips mode)")
				}
				if groups, _ := pol["groups"].(map[string]any); len(groups) > 0 {
					fmt.Fprintln(tw, "\nGROUP\tMODE (override)")
					for _, k := range sortedKeys(groups) {
						fmt.Fprintf(tw, "%s\t%v\n", k, groups[k])
					}
				}
				fmt.Fprintln(tw, "\nCOUNTER\tVALUE")
				st, _ := m["stats"].(map[string]any)
				for _, k := range sortedKeys(st) {
					if v, ok := st[k].(float64); ok {
						fmt.Fprintf(tw, "%s\t%s\n", k, count(v))
					}
				}
			})
		},
	}
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func ipsModeCmd(g *globals) *cobra.Command {
	var group, overload string
	cmd := &cobra.Command{
		Use:   "mode [NETWORK] off|alert|block",
		Short: "Where the IPS inspects: per network (and fail-open/fail-closed), or a security group's override",
		Long: `ips mode NETWORK block   inspect every VM NIC of NETWORK; drop/reject rules block
ips mode NETWORK alert   inspect and alert only (nothing is blocked)
ips mode NETWORK off     stop inspecting NETWORK
ips mode --group G alert|block|off|inherit
                         override the mode for traffic to or from members of
                         security group G (the strictest override of the two
                         ends wins; inherit removes the override)
--overload fail-open|fail-closed: what a network does with packets when the
engine cannot keep up (default fail-closed: they are dropped, counted and
logged).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := obj{}
			switch {
			case group != "" && len(args) == 1:
				body["group"] = group
				if args[0] != "inherit" {
					body["mode"] = args[0]
				} else {
					body["mode"] = ""
				}
			case group == "" && len(args) == 2:
				body["network"], body["mode"] = args[0], args[1]
			default:
				return fmt.Errorf("usage: ips mode NETWORK MODE, or ips mode --group GROUP MODE")
			}
			setIf(body, "overload", overload)
			out, err := g.call(cmd.Context(), "PUT", "/api/v1/ips/mode", body)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				b, _ := json.Marshal(out)
				fmt.Fprintf(tw, "policy: %s\n", b)
			})
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "set a security group's override instead of a network's mode")
	cmd.Flags().StringVar(&overload, "overload", "", "fail-open or fail-closed (networks only)")
	return cmd
}

func ipsAlertsCmd(g *globals) *cobra.Command {
	var vmName string
	var sid uint32
	var n int64
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "The IPS's alerts as Suricata EVE JSON lines (with a bulwark object naming VMs, ports and groups)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.client().Raw(cmd.Context(), "GET", "/api/v1/ips/alerts?bytes="+strconv.FormatInt(n, 10))
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, line := range bytes.Split(b, []byte("\n")) {
				if len(line) == 0 || !alertMatches(line, vmName, sid) {
					continue
				}
				w.Write(line)
				io.WriteString(w, "\n")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&vmName, "vm", "", "only alerts whose source or destination is this VM")
	cmd.Flags().Uint32Var(&sid, "sid", 0, "only this rule's alerts")
	cmd.Flags().Int64Var(&n, "bytes", 1<<20, "read the last BYTES of the log")
	return cmd
}

func alertMatches(line []byte, vmName string, sid uint32) bool {
	if vmName == "" && sid == 0 {
		return true
	}
	var ev struct {
		Alert struct {
			SID uint32 `json:"signature_id"`
		} `json:"alert"`
		Bulwark struct {
			SrcVM  string `json:"src_vm"`
			DestVM string `json:"dest_vm"`
		} `json:"bulwark"`
	}
	if json.Unmarshal(line, &ev) != nil {
		return false
	}
	if sid != 0 && ev.Alert.SID != sid {
		return false
	}
	return vmName == "" || ev.Bulwark.SrcVM == vmName || ev.Bulwark.DestVM == vmName
}
