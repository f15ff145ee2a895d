package main

import (
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The tamper-evident audit log"}
	var f struct {
		user, object, since, until string
		limit                      int
	}
	query := func() string {
		q := url.Values{}
		for k, v := range map[string]string{"user": f.user, "object": f.object, "since": f.since, "until": f.until} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if f.limit > 0 {
			q.Set("limit", strconv.Itoa(f.limit))
		}
		if len(q) == 0 {
			return ""
		}
		return "?" + q.Encode()
	}
	addFilters := func(c *cobra.Command) {
		c.Flags().StringVar(&f.user, "user", "", "only this user")
		c.Flags().StringVar(&f.object, "object", "", "only this object path, e.g. /vms/web1")
		c.Flags().StringVar(&f.since, "since", "", "from this time (RFC 3339)")
		c.Flags().StringVar(&f.until, "until", "", "before this time (RFC 3339)")
		c.Flags().IntVar(&f.limit, "limit", 0, "at most this many records")
	}
	list := &cobra.Command{
		Use: "list", Short: "List audit records", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/audit"+query(), nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "SEQ\tTIME\tUSER\tSOURCE\tACTION\tOBJECT\tRESULT")
				for _, x := range asList(out) {
					m, _ := x.(map[string]any)
					fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\n", m["seq"], m["time"], m["user"], m["source"], m["action"], m["object"], m["result"])
				}
			})
		},
	}
	addFilters(list)
	export := &cobra.Command{
		Use: "export", Short: "Write audit records as JSON lines", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.client().Raw(cmd.Context(), "GET", "/api/v1/audit/export"+query())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	addFilters(export)
	verify := &cobra.Command{
		Use: "verify", Short: "Check the hash chain and signed checkpoints; exits non-zero on tampering", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/audit/verify", nil)
			if err != nil {
				return err
			}
			m, _ := out.(map[string]any)
			if err := g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "records %v, checkpoints %v\n", m["records"], m["checkpoints"])
				for _, x := range asList(m["problems"]) {
					p, _ := x.(map[string]any)
					fmt.Fprintf(tw, "seq %v\t%v\t%v\n", p["seq"], p["kind"], p["detail"])
				}
			}); err != nil {
				return err
			}
			if ok, _ := m["ok"].(bool); !ok {
				return fmt.Errorf("audit log verification failed: %d problem(s)", len(asList(m["problems"])))
			}
			return nil
		},
	}
	cmd.AddCommand(list, export, verify)
	return cmd
}
