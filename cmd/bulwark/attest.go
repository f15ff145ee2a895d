package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/api"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

func init() { extraCommands = append(extraCommands, attestCmd) }

func attestCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest",
		Short: "Measured launch: the event log and the PCRs it replays to (docs/attestation.md)",
	}
	cmd.AddCommand(attestLogCmd(g), attestPCRsCmd(g))
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
		Short: "Show the TPM's PCR 11 and 12, the values the event log replays to, and whether they agree",
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
	for _, i := range []string{"11", "12"} {
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
