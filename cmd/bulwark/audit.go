package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/audit"
)

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The tamper-evident audit log"}
	var f struct {
		user, object, since, until string
		limit                      int
	}
	// query is the filter flags as a query string, with one more parameter
	// (name, value) unless value is empty.
	query := func(name, value string) string {
		q := url.Values{}
		for k, v := range map[string]string{"user": f.user, "object": f.object, "since": f.since, "until": f.until, name: value} {
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
	var oldestFirst bool
	var format string
	list := &cobra.Command{
		Use: "list", Short: "List audit records, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			order := ""
			if oldestFirst {
				order = "asc"
			}
			out, err := g.call(cmd.Context(), "GET", "/api/v1/audit"+query("order", order), nil)
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
	list.Flags().BoolVar(&oldestFirst, "oldest-first", false, "list the oldest records first")
	export := &cobra.Command{
		Use: "export", Short: "Write audit records, oldest first, as JSON lines or RFC 5424 syslog messages", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "jsonl" && format != "syslog" {
				return fmt.Errorf("--format %q: must be jsonl or syslog", format)
			}
			_, err := g.client().Download(cmd.Context(), "/api/v1/audit/export"+query("format", format), cmd.OutOrStdout())
			return err
		},
	}
	addFilters(export)
	export.Flags().StringVar(&format, "format", "jsonl", "jsonl (one record's JSON per line) or syslog (RFC 5424, one message per line)")
	var anchorFiles []string
	var pubHex string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the hash chain, signed checkpoints and anchors; exits non-zero on tampering",
		Long: "Asks the daemon to verify its audit log (chain, checkpoints, local anchor file). With --anchors, also\n" +
			"compares the daemon's export with anchor copies kept elsewhere (an HTTPS receiver's store, a syslog\n" +
			"server's file): a rewritten, cut or wiped log shows up even if the local anchor file went with it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/audit/verify", nil)
			if err != nil {
				return err
			}
			m, _ := out.(map[string]any)
			nproblems := len(asList(m["problems"]))
			var remote *audit.AnchorReport
			if len(anchorFiles) > 0 {
				if pubHex == "" {
					pubHex, _ = m["public_key"].(string)
				}
				rep, err := verifyRemoteAnchors(cmd.Context(), g, anchorFiles, pubHex)
				if err != nil {
					return err
				}
				remote = &rep
				m["remote_anchors"] = rep
				nproblems += len(rep.Problems)
			}
			if err := g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "records %v, checkpoints %v, anchors %v (%v unanchored), signing %v\n",
					m["records"], m["checkpoints"], m["anchors"], m["unanchored"], m["signing"])
				for _, x := range asList(m["problems"]) {
					p, _ := x.(map[string]any)
					fmt.Fprintf(tw, "seq %v\t%v\t%v\n", p["seq"], p["kind"], p["detail"])
				}
				if remote != nil {
					fmt.Fprintf(tw, "against %d anchor file(s): anchors %d (%d records after the newest)\n",
						len(anchorFiles), remote.Anchors, remote.Unanchored)
					for _, p := range remote.Problems {
						fmt.Fprintf(tw, "seq %d\t%s\t%s\n", p.Seq, p.Kind, p.Detail)
					}
				}
			}); err != nil {
				return err
			}
			if nproblems > 0 {
				return fmt.Errorf("audit log verification failed: %d problem(s)", nproblems)
			}
			return nil
		},
	}
	verify.Flags().StringArrayVar(&anchorFiles, "anchors", nil, "also check against this anchor file, e.g. a copy from a remote sink (repeatable)")
	verify.Flags().StringVar(&pubHex, "public-key", "", "the log's Ed25519 public key (hex) to check anchored checkpoints with (default: the daemon's)")
	cmd.AddCommand(list, export, verify)
	return cmd
}

// verifyRemoteAnchors compares the daemon's full export with anchor files
// read here. Remote copies hold checkpoints only, so records after the
// newest one are counted, not reported: there is no crash window to hold
// them to.
func verifyRemoteAnchors(ctx context.Context, g *globals, files []string, pubHex string) (audit.AnchorReport, error) {
	pub, err := hex.DecodeString(pubHex)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return audit.AnchorReport{}, fmt.Errorf("--public-key %q: want %d bytes in hex", pubHex, ed25519.PublicKeySize)
	}
	var sets []audit.AnchorSet
	for _, f := range files {
		set, err := audit.ReadAnchorFile(f)
		if err != nil {
			return audit.AnchorReport{}, err
		}
		sets = append(sets, set)
	}
	check := audit.NewAnchorCheck(pub, sets, math.MaxUint64)
	pr, pw := io.Pipe()
	go func() {
		_, err := g.client().Download(ctx, "/api/v1/audit/export", pw)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	dec := json.NewDecoder(pr)
	for {
		var r audit.Record
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return audit.AnchorReport{}, fmt.Errorf("audit export: %w", err)
		}
		check.Add(r)
	}
	return check.Report(), nil
}
