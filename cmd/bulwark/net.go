package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// The switch commands send and print generic JSON: the daemon validates,
// and -o json shows exactly what it answered.
type obj = map[string]any

func (g *globals) call(ctx context.Context, method, path string, in any) (any, error) {
	var out any
	err := g.client().Do(ctx, method, path, in, &out)
	return out, err
}

func networkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Virtual switch networks"}
	var n struct {
		subnet, gateway, ingress, egress, uplink string
		storm                                    int
	}
	create := &cobra.Command{
		Use: "create NAME", Short: "Create an isolated L2 network", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := obj{"name": args[0], "subnet": n.subnet}
			setIf(body, "gateway", n.gateway)
			setIf(body, "default_ingress", n.ingress)
			setIf(body, "default_egress", n.egress)
			if n.storm > 0 {
				body["storm_pps"] = n.storm
			}
			if n.uplink != "" {
				kind, iface, ok := strings.Cut(n.uplink, ":")
				if !ok {
					return fmt.Errorf("--uplink %q: want interface:NAME or tap:NAME", n.uplink)
				}
				body["uplink"] = obj{"kind": kind, "interface": iface}
			}
			out, err := g.call(cmd.Context(), "POST", "/api/v1/networks", body)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printNetworks(tw, []any{out}) })
		},
	}
	f := create.Flags()
	f.StringVar(&n.subnet, "subnet", "", "IPv4 CIDR, e.g. 10.10.0.0/24")
	f.StringVar(&n.gateway, "gateway", "", "gateway address in the subnet")
	f.StringVar(&n.ingress, "default-ingress", "", "same-group (default), deny or allow")
	f.StringVar(&n.egress, "default-egress", "", "allow (default) or deny")
	f.IntVar(&n.storm, "storm-pps", 0, "broadcast/multicast frames per second per VM port (default 100)")
	f.StringVar(&n.uplink, "uplink", "", "interface:IFNAME (raw socket on an existing interface) or tap:IFNAME")
	list := &cobra.Command{
		Use: "list", Short: "List networks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/networks", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printNetworks(tw, asList(out)) })
		},
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a network", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/networks/"+url.PathEscape(args[0]), nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				printNetworks(tw, []any{out})
				if m, ok := out.(map[string]any); ok {
					fmt.Fprintf(tw, "\nstorm control\t%s broadcast/multicast/unknown-unicast frames/s per VM port\n", count(m["storm_pps"]))
				}
			})
		},
	}
	cmd.AddCommand(create, list, show, networkSetCmd(g), deleteCmd(g, "network", "/api/v1/networks/"))
	return cmd
}

func printNetworks(tw *tabwriter.Writer, list []any) {
	fmt.Fprintln(tw, "NAME\tSUBNET\tGATEWAY\tINGRESS\tEGRESS\tUPLINK\tVEPA")
	for _, x := range list {
		m, _ := x.(map[string]any)
		up := "-"
		if u, ok := m["uplink"].(map[string]any); ok {
			up = fmt.Sprintf("%v:%v", u["kind"], u["interface"])
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%s\t%v\n", m["name"], m["subnet"], orDash(m["gateway"]), m["default_ingress"], m["default_egress"], up, m["vepa"] == true)
	}
}

func sgCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "sg", Short: "Security groups (stateful firewall at every VM NIC)",
		Long: "Security groups are ordered rule lists that VM NICs join (vm create --nic ...,groups=...).\n" +
			"Group names are global: one group named web is the same group on every network, and its\n" +
			"rules apply to its members on each network they are attached to. Membership (remote groups,\n" +
			"the same-group default) is resolved per network: a member on another network never matches."}
	create := &cobra.Command{
		Use: "create NAME", Short: "Create an empty security group", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "POST", "/api/v1/security-groups", obj{"name": args[0]})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printGroup(tw, out) })
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List security groups", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/security-groups", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tRULES")
				for _, x := range asList(out) {
					m, _ := x.(map[string]any)
					rules, _ := m["rules"].([]any)
					fmt.Fprintf(tw, "%v\t%d\n", m["name"], len(rules))
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a group's ordered rules", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/security-groups/"+url.PathEscape(args[0]), nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printGroup(tw, out) })
		},
	}
	cmd.AddCommand(create, list, show, deleteCmd(g, "security group", "/api/v1/security-groups/"), ruleCmd(g))
	return cmd
}

func printGroup(tw *tabwriter.Writer, out any) {
	m, _ := out.(map[string]any)
	fmt.Fprintf(tw, "group %v\n", m["name"])
	fmt.Fprintln(tw, "ID\tDIRECTION\tACTION\tPROTO\tPORTS\tICMP\tREMOTE\tDESCRIPTION")
	rules, _ := m["rules"].([]any)
	for _, x := range rules {
		r, _ := x.(map[string]any)
		remote := "any"
		for _, k := range []string{"remote_cidr", "remote_ip_set", "remote_group"} {
			if v, ok := r[k].(string); ok && v != "" {
				remote = strings.TrimPrefix(k, "remote_") + ":" + v
			}
		}
		ports := "-"
		if lo, _ := r["port_min"].(float64); lo > 0 {
			hi, _ := r["port_max"].(float64)
			ports = fmt.Sprintf("%d-%d", int(lo), int(hi))
		}
		icmp := "-"
		if t, ok := r["icmp_type"].(float64); ok && t >= 0 {
			icmp = strconv.Itoa(int(t))
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%s\t%s\t%s\t%v\n", r["id"], r["direction"], r["action"], orDash(r["protocol"]), ports, icmp, remote, orDash(r["description"]))
	}
}

func ruleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rule", Short: "Add or remove rules (live and atomic)"}
	var r struct {
		direction, action, proto, ports, cidr, ipset, group, desc, id string
		icmp, position                                                int
	}
	add := &cobra.Command{
		Use: "add GROUP", Short: "Add a rule to a group (first match wins)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := obj{"direction": r.direction, "action": r.action}
			setIf(body, "protocol", r.proto)
			setIf(body, "id", r.id)
			setIf(body, "remote_cidr", r.cidr)
			setIf(body, "remote_ip_set", r.ipset)
			setIf(body, "remote_group", r.group)
			setIf(body, "description", r.desc)
			if r.icmp >= 0 {
				body["icmp_type"] = r.icmp
			}
			if r.ports != "" {
				lo, hi, err := parsePorts(r.ports)
				if err != nil {
					return err
				}
				body["port_min"], body["port_max"] = lo, hi
			}
			path := "/api/v1/security-groups/" + url.PathEscape(args[0]) + "/rules"
			if r.position >= 0 {
				path += "?position=" + strconv.Itoa(r.position)
			}
			out, err := g.call(cmd.Context(), "POST", path, body)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				if id := addedRuleID(out, r.position); id != "" {
					fmt.Fprintf(tw, "added rule %s\n\n", id)
				}
				printGroup(tw, out)
			})
		},
	}
	f := add.Flags()
	f.StringVar(&r.direction, "direction", "ingress", "ingress or egress")
	f.StringVar(&r.action, "action", "allow", "allow, drop or reject")
	f.StringVar(&r.proto, "protocol", "", "any (default), tcp, udp or icmp")
	f.StringVar(&r.ports, "port", "", "destination port or range LO-HI (tcp/udp)")
	f.IntVar(&r.icmp, "icmp-type", -1, "ICMP type (icmp)")
	f.StringVar(&r.cidr, "remote-cidr", "", "remote addresses as a CIDR")
	f.StringVar(&r.ipset, "remote-ip-set", "", "remote addresses as a named IP set")
	f.StringVar(&r.group, "remote-group", "", "remote addresses: the members of a security group (dynamic)")
	f.StringVar(&r.desc, "description", "", "free text")
	f.StringVar(&r.id, "id", "", "rule id (default: next rN)")
	f.IntVar(&r.position, "position", -1, "insert before this 0-based position (default: append)")
	remove := &cobra.Command{
		Use: "remove GROUP RULE-ID", Short: "Remove a rule; flows it allowed are cut", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "DELETE", "/api/v1/security-groups/"+url.PathEscape(args[0])+"/rules/"+url.PathEscape(args[1]), nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printGroup(tw, out) })
		},
	}
	cmd.AddCommand(add, remove)
	return cmd
}

func parsePorts(s string) (int, int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(lo)
	if err != nil {
		return 0, 0, fmt.Errorf("--port %q: not a number", s)
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(hi); err != nil {
			return 0, 0, fmt.Errorf("--port %q: not a range", s)
		}
	}
	return a, b, nil // the daemon checks the bounds (port 70000 is refused there)
}

func ipsetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ipset", Short: "Named address sets for rules"}
	var cidrs []string
	create := &cobra.Command{
		Use: "create NAME --cidr C [--cidr C...]", Short: "Create an IP set", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "POST", "/api/v1/ip-sets", obj{"name": args[0], "cidrs": cidrs})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printIPSets(tw, []any{out}) })
		},
	}
	create.Flags().StringArrayVar(&cidrs, "cidr", nil, "CIDR (repeatable)")
	list := &cobra.Command{
		Use: "list", Short: "List IP sets", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/ip-sets", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printIPSets(tw, asList(out)) })
		},
	}
	cmd.AddCommand(create, list, deleteCmd(g, "ip set", "/api/v1/ip-sets/"))
	return cmd
}

func printIPSets(tw *tabwriter.Writer, list []any) {
	fmt.Fprintln(tw, "NAME\tCIDRS")
	for _, x := range list {
		m, _ := x.(map[string]any)
		var cs []string
		l, _ := m["cidrs"].([]any)
		for _, c := range l {
			cs = append(cs, fmt.Sprint(c))
		}
		fmt.Fprintf(tw, "%v\t%s\n", m["name"], strings.Join(cs, " "))
	}
}

func portCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "port", Short: "Switch ports and their counters"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List ports with rx/tx and drops by reason", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/ports", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tNAME\tNETWORK\tMAC\tIPS\tGROUPS\tRX\tTX\tTX_FULL\tDROPS")
				for _, x := range asList(out) {
					m, _ := x.(map[string]any)
					fmt.Fprintf(tw, "%s\t%v\t%v\t%v\t%v\t%v\t%s\t%s\t%s\t%s\n", count(m["id"]), m["name"], m["network"], orDash(m["mac"]),
						joinAny(m["ips"]), joinAny(m["groups"]), count(m["rx_frames"]), count(m["tx_frames"]), count(m["tx_dropped_full"]),
						formatDrops(m["drops"]))
				}
			})
		},
	})
	return cmd
}

func fwCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "fw", Short: "Firewall visibility"}
	var n int
	var network, vmName, since, until string
	logc := &cobra.Command{
		Use: "log", Short: "Tail of the firewall event log (JSON lines), optionally filtered", Args: cobra.NoArgs,
		Long: "Prints the firewall log's lines among its last --bytes bytes: new-flow verdicts, and drops with\n" +
			"their reason (spoofing, rogue DHCP/RA, storm control, ICMP errors, rate limits, ...; per-port drop\n" +
			"lines are at most one a second per port and reason, with the frames dropped since the previous one).\n" +
			"--since and --until take an RFC 3339 time or a duration before now (10m, 2h).",
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if n > 0 {
				q.Set("bytes", strconv.Itoa(n))
			}
			setIf2(q, "network", network)
			setIf2(q, "vm", vmName)
			for _, t := range []struct{ name, v string }{{"since", since}, {"until", until}} {
				if t.v == "" {
					continue
				}
				ts, err := logTime(t.v, time.Now())
				if err != nil {
					return fmt.Errorf("--%s: %w", t.name, err)
				}
				q.Set(t.name, ts)
			}
			p := "/api/v1/firewall/log"
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			b, err := g.client().Raw(cmd.Context(), "GET", p)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	logc.Flags().IntVar(&n, "bytes", 0, "bytes from the end to search (default 65536)")
	logc.Flags().StringVar(&network, "network", "", "only lines of this network")
	logc.Flags().StringVar(&vmName, "vm", "", "only lines of this VM")
	logc.Flags().StringVar(&since, "since", "", "only lines at or after this time (RFC 3339, or a duration before now)")
	logc.Flags().StringVar(&until, "until", "", "only lines at or before this time (RFC 3339, or a duration before now)")
	hits := &cobra.Command{
		Use: "hits", Short: "Hit counters of every rule (removed rules keep their final count)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/firewall/rule-hits", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "GROUP\tRULE\tHITS\tSTATE")
				for _, x := range asList(out) {
					m, _ := x.(map[string]any)
					state := "active"
					if m["removed"] == true {
						state = "removed"
					}
					fmt.Fprintf(tw, "%v\t%v\t%s\t%s\n", m["group"], m["rule_id"], count(m["hits"]), state)
				}
			})
		},
	}
	cmd.AddCommand(logc, hits)
	return cmd
}

func deleteCmd(g *globals, what, prefix string) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a " + what, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.call(cmd.Context(), "DELETE", prefix+url.PathEscape(args[0]), nil); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), obj{"deleted": args[0]}, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "deleted %s %s\n", what, args[0])
			})
		},
	}
}

func setIf(m obj, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func orDash(v any) string {
	if s, ok := v.(string); ok && s != "" {
		return s
	}
	if v == nil {
		return "-"
	}
	return fmt.Sprint(v)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func joinAny(v any) string {
	l, _ := v.([]any)
	if len(l) == 0 {
		return "-"
	}
	var s []string
	for _, x := range l {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, ",")
}

// setIf2 sets a query parameter when v is not empty.
func setIf2(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

// logTime reads an RFC 3339 time, or a duration meaning that long before
// now, and returns it in RFC 3339 (UTC).
func logTime(s string, now time.Time) (string, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return "", fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
}

// count prints a JSON number (a float64 after decoding) as an integer,
// never in exponent form.
func count(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case nil:
		return "0"
	}
	return fmt.Sprint(v)
}

// formatDrops prints drop counters as reason=count, sorted by reason, "-"
// for none.
func formatDrops(v any) string {
	d, _ := v.(map[string]any)
	if len(d) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + count(d[k])
	}
	return strings.Join(keys, " ")
}

// addedRuleID returns the id of the rule sg rule add inserted: the group's
// rule at position, or its last rule when appended.
func addedRuleID(group any, position int) string {
	m, _ := group.(map[string]any)
	rules, _ := m["rules"].([]any)
	if len(rules) == 0 {
		return ""
	}
	i := len(rules) - 1
	if position >= 0 && position < len(rules) {
		i = position
	}
	r, _ := rules[i].(map[string]any)
	id, _ := r["id"].(string)
	return id
}
