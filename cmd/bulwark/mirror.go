package main

import (
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// Traffic mirroring, VEPA and service insertion (issue 15, item 7).

func init() { extraCommands = append(extraCommands, mirrorCmd, chainCmd) }

func mirrorCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "mirror", Short: "Mirror (SPAN) VM traffic to a pcap file, a monitoring VM's port or ERSPAN (docs/ips.md)"}
	var m struct {
		network, direction, to, proto, host string
		sources                             []string
		port                                uint16
		snaplen, maxFiles, sessionID        int
		maxBytes                            int64
	}
	create := &cobra.Command{
		Use:   "create NAME --network NET --source VM[/nicN]... --to pcap|port:VM[/nicN]|erspan:IP",
		Short: "Create a mirror session",
		Long: `Copy the frames of the chosen VM ports (after the firewall and the IPS admitted
them) to:
  pcap            rotating pcap files in the daemon's state directory
                  (--max-bytes per file, --max-files kept)
  port:VM/nicN    a monitoring VM's NIC on the same network; it only receives
  erspan:IP       ERSPAN type II over GRE to a remote collector (--session-id)
--direction out (frames the source sends), in (frames it receives) or both;
--proto/--port/--host restrict it to matching flows. Needs Network.Mirror.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := obj{"name": args[0], "network": m.network, "sources": m.sources}
			setIf(body, "direction", m.direction)
			target := obj{}
			kind, arg, _ := strings.Cut(m.to, ":")
			target["kind"] = kind
			switch kind {
			case "pcap":
				if m.maxBytes > 0 {
					target["max_bytes"] = m.maxBytes
				}
				if m.maxFiles > 0 {
					target["max_files"] = m.maxFiles
				}
			case "port":
				target["port"] = arg
			case "erspan":
				target["remote"] = arg
				target["session_id"] = m.sessionID
			default:
				return fmt.Errorf("--to %q: want pcap, port:VM[/nicN] or erspan:IP", m.to)
			}
			body["target"] = target
			if m.proto != "" || m.port != 0 || m.host != "" {
				f := obj{}
				setIf(f, "proto", m.proto)
				setIf(f, "host", m.host)
				if m.port != 0 {
					f["port"] = m.port
				}
				body["filter"] = f
			}
			if m.snaplen > 0 {
				body["snaplen"] = m.snaplen
			}
			out, err := g.call(cmd.Context(), "POST", "/api/v1/mirrors", body)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printMirrors(tw, []any{out}) })
		},
	}
	f := create.Flags()
	f.StringVar(&m.network, "network", "", "the sources' network")
	f.StringArrayVar(&m.sources, "source", nil, "VM or VM/nicN to mirror (repeatable)")
	f.StringVar(&m.direction, "direction", "", "out, in or both (default)")
	f.StringVar(&m.to, "to", "pcap", "pcap, port:VM[/nicN] or erspan:IP")
	f.StringVar(&m.proto, "proto", "", "only tcp, udp or icmp")
	f.Uint16Var(&m.port, "port", 0, "only flows with this source or destination port")
	f.StringVar(&m.host, "host", "", "only flows to or from this IP or CIDR")
	f.IntVar(&m.snaplen, "snaplen", 0, "bytes kept per frame (default 65535)")
	f.Int64Var(&m.maxBytes, "max-bytes", 0, "pcap: rotate at this size (default 64 MiB)")
	f.IntVar(&m.maxFiles, "max-files", 0, "pcap: files kept (default 4)")
	f.IntVar(&m.sessionID, "session-id", 1, "erspan: session id 0-1023")
	list := &cobra.Command{
		Use: "list", Short: "List mirror sessions with their counters and files", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/mirrors", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printMirrors(tw, asList(out)) })
		},
	}
	cmd.AddCommand(create, list, deleteCmd(g, "mirror", "/api/v1/mirrors/"))
	return cmd
}

func printMirrors(tw *tabwriter.Writer, list []any) {
	fmt.Fprintln(tw, "NAME\tNETWORK\tSOURCES\tDIRECTION\tTARGET\tFRAMES\tBYTES\tDROPPED\tFILES/ERROR")
	for _, x := range list {
		m, _ := x.(map[string]any)
		t, _ := m["target"].(map[string]any)
		target := fmt.Sprint(t["kind"])
		switch target {
		case "port":
			target += ":" + fmt.Sprint(t["port"])
		case "erspan":
			target += fmt.Sprintf(":%v id %v", t["remote"], count(t["session_id"]))
		}
		var srcs []string
		for _, s := range asList(m["sources"]) {
			srcs = append(srcs, fmt.Sprint(s))
		}
		extra := "-"
		if e, ok := m["last_error"].(string); ok && e != "" {
			extra = "error: " + e
		} else if fs := asList(m["files"]); len(fs) > 0 {
			extra = fmt.Sprint(fs[len(fs)-1])
			if len(fs) > 1 {
				extra += fmt.Sprintf(" (+%d)", len(fs)-1)
			}
		}
		fmt.Fprintf(tw, "%v\t%v\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n", m["name"], m["network"], strings.Join(srcs, ","), orDash(m["direction"]),
			target, count(m["frames"]), count(m["bytes"]), count(m["dropped"]), extra)
	}
}

func chainCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "service-chain", Aliases: []string{"chain"},
		Short: "Service insertion: pass chosen flows through an appliance VM before delivery (docs/ips.md)"}
	var c struct {
		network, srcGroup, dstGroup, proto, in, out string
		port                                        uint16
		failOpen                                    bool
	}
	create := &cobra.Command{
		Use:   "create NAME --network NET --in VM/nicN --out VM/nicN [match flags]",
		Short: "Redirect matching new flows through an appliance VM (in one port, out the other)",
		Long: `New flows between two VMs of NETWORK that match (--src-group, --dst-group,
--proto, --port; all optional, all must hold) are not delivered directly:
after the firewall and the IPS admitted them, client-to-server frames go to
the appliance's --in port and are delivered when they come back out of its
--out port (replies the other way). The appliance may drop them. With the
appliance's ports absent, matching frames are dropped (service_down) unless
--fail-open. Needs Network.Mirror (the appliance sees the traffic).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := obj{"name": args[0], "network": c.network, "in_port": c.in, "out_port": c.out}
			setIf(body, "src_group", c.srcGroup)
			setIf(body, "dst_group", c.dstGroup)
			setIf(body, "proto", c.proto)
			if c.port != 0 {
				body["port"] = c.port
			}
			if c.failOpen {
				body["fail_open"] = true
			}
			out, err := g.call(cmd.Context(), "POST", "/api/v1/service-chains", body)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printChains(tw, []any{out}) })
		},
	}
	f := create.Flags()
	f.StringVar(&c.network, "network", "", "network of the flows and the appliance")
	f.StringVar(&c.srcGroup, "src-group", "", "only flows from members of this security group")
	f.StringVar(&c.dstGroup, "dst-group", "", "only flows to members of this security group")
	f.StringVar(&c.proto, "proto", "", "only tcp, udp or icmp")
	f.Uint16Var(&c.port, "port", 0, "only flows to this destination port")
	f.StringVar(&c.in, "in", "", "the appliance's port that receives client-to-server frames (VM/nicN)")
	f.StringVar(&c.out, "out", "", "the appliance's port that sends them on (VM/nicN)")
	f.BoolVar(&c.failOpen, "fail-open", false, "deliver directly while the appliance is absent (default: drop)")
	list := &cobra.Command{
		Use: "list", Short: "List service chains", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/service-chains", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printChains(tw, asList(out)) })
		},
	}
	cmd.AddCommand(create, list, deleteCmd(g, "service chain", "/api/v1/service-chains/"))
	return cmd
}

func printChains(tw *tabwriter.Writer, list []any) {
	fmt.Fprintln(tw, "NAME\tNETWORK\tSRC GROUP\tDST GROUP\tPROTO\tPORT\tIN\tOUT\tFAIL-OPEN")
	for _, x := range list {
		m, _ := x.(map[string]any)
		fmt.Fprintf(tw, "%v\t%v\t%s\t%s\t%s\t%s\t%v\t%v\t%v\n", m["name"], m["network"], orDash(m["src_group"]), orDash(m["dst_group"]),
			orDash(m["proto"]), orDash(m["port"]), m["in_port"], m["out_port"], m["fail_open"] == true)
	}
}

// networkSetCmd changes a live network's settings.
func networkSetCmd(g *globals) *cobra.Command {
	var vepa bool
	cmd := &cobra.Command{
		Use:   "set NAME --vepa=true|false",
		Short: "Change a network: VEPA (frames between VMs hairpin through the uplink's external switch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("vepa") {
				return fmt.Errorf("nothing to change (--vepa)")
			}
			out, err := g.call(cmd.Context(), "PATCH", "/api/v1/networks/"+url.PathEscape(args[0]), obj{"vepa": vepa})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printNetworks(tw, []any{out}) })
		},
	}
	cmd.Flags().BoolVar(&vepa, "vepa", false, "VEPA mode: inter-VM frames leave by the uplink and are accepted back when the external switch reflects them")
	return cmd
}
