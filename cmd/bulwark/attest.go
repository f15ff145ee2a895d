package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/attest/quote"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

func init() { extraCommands = append(extraCommands, attestCmd) }

func attestCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest",
		Short: "Measured launch: the event log and the PCRs it replays to (docs/attestation.md)",
	}
	cmd.AddCommand(attestLogCmd(g), attestPCRsCmd(g), attestStatusCmd(g), attestQuoteCmd(g), attestGoldenCmd(g))
	return cmd
}

// attestEvent is one event as `attest log -o json` prints it.
type attestEvent struct {
	PCR    uint32 `json:"pcr"`
	Type   string `json:"type"`
	Digest string `json:"sha256"`
	Data   string `json:"data"`
}

func attestLogCmd(g *globals) *cobra.Command {
	var raw string
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Print the measured-launch event log: PCR, type, digest and description of each event",
		Long: `Print the daemon's TCG event log. The descriptions are untrusted text;
only the digests are bound to the PCRs. --raw FILE saves the binary log
as served (for tpm2_eventlog or another verifier), "-" for stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.client().Raw(cmd.Context(), "GET", "/api/v1/attestation/eventlog")
			if err != nil {
				return err
			}
			if raw != "" {
				if raw == "-" {
					_, err = cmd.OutOrStdout().Write(b)
					return err
				}
				return os.WriteFile(raw, b, 0o600)
			}
			events, err := eventlog.Parse(b)
			if err != nil {
				return err
			}
			out := make([]attestEvent, len(events))
			for i, e := range events {
				out[i] = attestEvent{PCR: e.PCR, Type: e.Type.String(), Digest: hex.EncodeToString(e.Digest[:]), Data: string(e.Data)}
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "PCR\tTYPE\tSHA256\tDATA")
				for _, e := range out {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", e.PCR, e.Type, e.Digest, strconv.Quote(e.Data))
				}
			})
		},
	}
	cmd.Flags().StringVar(&raw, "raw", "", "write the binary log to FILE (\"-\": stdout) instead of printing events")
	return cmd
}

func attestPCRsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pcrs",
		Short: "Show the TPM's PCRs 11-13, the values the event log replays to, and whether they agree",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var r api.PCRsResponse
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/attestation/pcrs", nil, &r); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), r, func(tw *tabwriter.Writer) { printPCRs(tw, r) })
		},
	}
}

func printPCRs(w io.Writer, r api.PCRsResponse) {
	fmt.Fprintf(w, "TPM:\t%s\n", r.TPM)
	fmt.Fprintf(w, "Hardware-rooted:\t%t\n", r.HardwareRooted)
	fmt.Fprintln(w, "PCR\tTPM\tREPLAYED FROM LOG")
	idx := make([]string, 0, len(r.Replayed))
	for i := range r.Replayed {
		idx = append(idx, i)
	}
	slices.SortFunc(idx, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	for _, i := range idx {
		tpmv := r.PCRs[i]
		if tpmv == "" {
			tpmv = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", i, tpmv, r.Replayed[i])
	}
	if r.Agree {
		fmt.Fprintln(w, "Agree:\tyes")
	} else {
		fmt.Fprintf(w, "Agree:\tno (%s)\n", r.Mismatch)
	}
}

func attestStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the TPM, whether VM starts are enforced, the latest verdict a verifier pushed, and runtime integrity",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st api.AgentStatus
			if err := g.client().Do(cmd.Context(), "GET", "/api/v1/attestation/status", nil, &st); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), st, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "TPM:\t%s\n", st.TPM)
				fmt.Fprintf(tw, "Hardware-rooted:\t%t\n", st.HardwareRooted)
				fmt.Fprintf(tw, "Quotes:\t%t\n", st.Quotes)
				fmt.Fprintf(tw, "Enforce (refuse VM starts when untrusted):\t%t\n", st.Enforce)
				if st.Verdict == nil {
					fmt.Fprintln(tw, "Verdict:\tnone received from a verifier")
				} else {
					fmt.Fprintf(tw, "Verdict:\t%s (policy version %d, from %s at %s)\n", st.Verdict.Status, st.Verdict.PolicyVersion,
						st.VerdictFrom, st.VerdictReceived.Format(time.RFC3339))
					printReasons(tw, "", st.Verdict.Reasons)
					for _, v := range st.Verdict.VMs {
						fmt.Fprintf(tw, "  vm %s:\t%s\n", v.Name, v.Status)
						printReasons(tw, "  ", v.Reasons)
					}
				}
				fmt.Fprintln(tw, "PROCESS\tVM\tPID\tCHECKED\tBYTES\tRESULT")
				for _, rc := range st.Runtime {
					res := "intact"
					switch {
					case rc.Error != "":
						res = "error: " + rc.Error
					case len(rc.Mismatches) > 0:
						m := rc.Mismatches[0]
						res = fmt.Sprintf("MODIFIED: %d regions, first %s offset 0x%x %s", len(rc.Mismatches), m.Object, m.Offset, m.Symbol)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", rc.Process, orDash(rc.VM), rc.PID, rc.Checked.Format(time.RFC3339), rc.Bytes, res)
				}
			})
		},
	}
}

func printReasons(w io.Writer, indent string, rs []attest.Reason) {
	for _, r := range rs {
		line := indent + "  " + r.Component + ":\t" + r.Message
		if r.Found != "" {
			line += " (found " + r.Found
			if len(r.Expected) > 0 {
				line += ", expected " + strings.Join(r.Expected, " or ")
			}
			line += ")"
		}
		fmt.Fprintln(w, line)
	}
}

// quoteOutput is `attest quote -o json`.
type quoteOutput struct {
	Nonce    string            `json:"nonce"`
	PCRs     map[string]string `json:"pcrs"`
	Verified bool              `json:"verified"`
	Report   json.RawMessage   `json:"report"`
	Quote    string            `json:"quote"`
	Sig      string            `json:"signature"`
	LogBytes int               `json:"event_log_bytes"`
}

func attestQuoteCmd(g *globals) *cobra.Command {
	var nonceHex string
	cmd := &cobra.Command{
		Use:   "quote",
		Short: "Ask the daemon for a TPM quote over a fresh nonce and check it against the daemon's AK",
		Long: `Ask the daemon for evidence over a nonce (random unless --nonce), then check
the quote's signature, nonce and PCR digest against the AK the daemon
reports. This is a self-check of the agent: the AK is taken from the same
daemon, so only a verifier that registered the AK (bulwark verifier) can
decide whether the host is trusted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			nonce := make([]byte, attest.NonceSize)
			if nonceHex != "" {
				var err error
				if nonce, err = hex.DecodeString(nonceHex); err != nil || len(nonce) != attest.NonceSize {
					return fmt.Errorf("--nonce: want %d bytes in hex", attest.NonceSize)
				}
			} else if _, err := rand.Read(nonce); err != nil {
				return err
			}
			c := g.client()
			var keys attest.Keys
			if err := c.Do(cmd.Context(), "GET", "/api/v1/attestation/keys", nil, &keys); err != nil {
				return err
			}
			var ev attest.Evidence
			if err := c.Do(cmd.Context(), "GET", "/api/v1/attestation/quote?nonce="+hex.EncodeToString(nonce), nil, &ev); err != nil {
				return err
			}
			out := quoteOutput{Nonce: hex.EncodeToString(nonce), PCRs: map[string]string{}, Report: ev.Report,
				Quote: hex.EncodeToString(ev.Quote), Sig: hex.EncodeToString(ev.Signature), LogBytes: len(ev.EventLog)}
			for i, v := range ev.PCRs {
				out.PCRs[strconv.Itoa(i)] = hex.EncodeToString(v)
			}
			_, verr := quote.Verify(keys.AK.Public, ev, nonce)
			out.Verified = verr == nil
			err := g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "Nonce:\t%s\n", out.Nonce)
				for _, i := range attest.QuotedPCRs {
					fmt.Fprintf(tw, "PCR %d:\t%s\n", i, out.PCRs[strconv.Itoa(i)])
				}
				fmt.Fprintf(tw, "Event log:\t%d bytes\n", out.LogBytes)
				fmt.Fprintf(tw, "Report:\t%d bytes (bound into the quote)\n", len(ev.Report))
				if verr == nil {
					fmt.Fprintln(tw, "Signature, nonce, PCR digest:\tvalid for the daemon's AK")
				}
			})
			if err != nil {
				return err
			}
			if verr != nil {
				return fmt.Errorf("quote does not verify: %w", verr)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&nonceHex, "nonce", "", "nonce in hex (default: random)")
	return cmd
}
