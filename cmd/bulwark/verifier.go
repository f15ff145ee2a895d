package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/attest"
	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/verifier"
)

func init() { extraCommands = append(extraCommands, verifierCmd) }

// DefaultVerifierSocket is where `verifier serve` listens by default.
const DefaultVerifierSocket = "/run/bulwark-verifier/verifier.sock"

func verifierCmd(g *globals) *cobra.Command {
	var sock string
	cmd := &cobra.Command{
		Use:   "verifier",
		Short: "Remote attestation verifier: register hosts, set the golden-value policy, see verdicts (docs/attestation.md)",
	}
	cmd.PersistentFlags().StringVar(&sock, "verifier-socket", "", "the verifier's socket (default $BULWARK_VERIFIER_SOCKET or "+DefaultVerifierSocket+")")
	vc := func() *client.Client {
		return client.New(firstNonEmpty(sock, os.Getenv("BULWARK_VERIFIER_SOCKET"), DefaultVerifierSocket))
	}
	host := &cobra.Command{Use: "host", Short: "Register, list and remove attested hosts"}
	host.AddCommand(verifierHostAddCmd(g, vc), verifierHostListCmd(g, vc), verifierHostRemoveCmd(vc))
	policy := &cobra.Command{Use: "policy", Short: "Set or show the versioned policy of golden values"}
	policy.AddCommand(verifierPolicySetCmd(g, vc), verifierPolicyShowCmd(vc))
	cmd.AddCommand(verifierServeCmd(&sock), host, policy, verifierStatusCmd(g, vc), verifierPollCmd(g, vc), verifierHistoryCmd(g, vc))
	return cmd
}

func verifierServeCmd(sock *string) *cobra.Command {
	var (
		state, logFormat, logLevel string
		interval                   time.Duration
		hooks                      []string
		hookSecretFile             string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the verifier: poll every registered host for quotes and judge them against the policy",
		Long: `Run the verifier service. It keeps its own store and tamper-evident audit
log in --state, polls each registered host every --interval (jittered) over
the host's API with a fresh nonce, and keeps a verdict per host and per VM.
A change of verdict is logged, audited, POSTed to each --webhook (JSON,
signed with HMAC-SHA256 in X-Bulwark-Signature when --webhook-secret-file
is given) and pushed to the host's daemon, which refuses VM starts while
it is untrusted. Its API is a unix socket for root only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			var secret []byte
			if hookSecretFile != "" {
				b, err := os.ReadFile(hookSecretFile)
				if err != nil {
					return fmt.Errorf("--webhook-secret-file: %w", err)
				}
				secret = []byte(strings.TrimSpace(string(b)))
			}
			var wh []verifier.Webhook
			for _, u := range hooks {
				if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
					return fmt.Errorf("--webhook %q: want an http:// or https:// URL", u)
				}
				wh = append(wh, verifier.Webhook{URL: u, Secret: secret})
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			svc, err := verifier.Open(ctx, verifier.Config{Dir: state, Interval: interval, Webhooks: wh, Log: log})
			if err != nil {
				return err
			}
			defer svc.Close()
			path := firstNonEmpty(*sock, os.Getenv("BULWARK_VERIFIER_SOCKET"), DefaultVerifierSocket)
			log.Info("verifier serving", "socket", path, "state", state, "interval", interval, "webhooks", len(wh))
			return svc.Serve(ctx, path)
		},
	}
	cmd.Flags().StringVar(&state, "state", "/var/lib/bulwark-verifier", "the verifier's own state directory (store, audit log)")
	cmd.Flags().DurationVar(&interval, "interval", verifier.DefaultInterval, "how often each host is polled")
	cmd.Flags().StringArrayVar(&hooks, "webhook", nil, "URL told about each verdict change (repeatable)")
	cmd.Flags().StringVar(&hookSecretFile, "webhook-secret-file", "", "file holding the HMAC key for webhook signatures")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func verifierHostAddCmd(g *globals, vc func() *client.Client) *cobra.Command {
	var (
		url, tokenFile, caFile string
		replace                bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME --url URL --token-file FILE",
		Short: "Register a host: bind its AK to its EK with a credential challenge, then poll it",
		Long: `Register a host. The verifier reads the host's EK and AK from its API,
encrypts a random secret to the EK for the AK's name (MakeCredential) and
accepts the keys only if the host's TPM recovers it (ActivateCredential).
The token (from --token-file) needs Attestation.Read and Attestation.Config
on /attestation of that daemon. URL is unix:/run/bulwark/bulwark.sock or
https://HOST:PORT (with --ca, the daemon's CA certificate).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg := verifier.Registration{Name: args[0], URL: url, ReplaceKeys: replace}
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return err
				}
				reg.Token = strings.TrimSpace(string(b))
			}
			if caFile != "" {
				b, err := os.ReadFile(caFile)
				if err != nil {
					return err
				}
				reg.CA = string(b)
			}
			var st verifier.HostStatus
			if err := vc().Do(cmd.Context(), "POST", "/v1/hosts", reg, &st); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), st, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "Registered:\t%s\n", st.Name)
				fmt.Fprintf(tw, "TPM:\t%s\n", st.Keys.TPM)
				fmt.Fprintf(tw, "AK:\tbound to the EK by credential activation\n")
			})
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "the host daemon's API: unix:PATH or https://HOST:PORT")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the daemon API token for the verifier")
	cmd.Flags().StringVar(&caFile, "ca", "", "the daemon's CA certificate (PEM) for https")
	cmd.Flags().BoolVar(&replace, "replace-keys", false, "accept new TPM keys for a host registered before")
	cmd.MarkFlagRequired("url")
	return cmd
}

func verifierHostListCmd(g *globals, vc func() *client.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List registered hosts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var hs []verifier.HostStatus
			if err := vc().Do(cmd.Context(), "GET", "/v1/hosts", nil, &hs); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), hs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "HOST\tURL\tTPM\tREGISTERED")
				for _, h := range hs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Name, h.URL, h.Keys.TPM, h.RegisteredAt.Format(time.RFC3339))
				}
			})
		},
	}
}

func verifierHostRemoveCmd(vc func() *client.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Stop polling a host and forget its keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return vc().Do(cmd.Context(), "DELETE", "/v1/hosts/"+args[0], nil, nil)
		},
	}
}

func verifierPolicySetCmd(g *globals, vc func() *client.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "set FILE",
		Short: "Set a new policy version from a JSON file (\"-\": stdin); its version must increase",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var doc []byte
			var err error
			if args[0] == "-" {
				doc, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 2<<20))
			} else {
				doc, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			var out map[string]int
			if err := vc().Do(cmd.Context(), "PUT", "/v1/policy", rawJSON(doc), &out); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "Policy version %d set\n", out["version"])
			})
		},
	}
}

// rawJSON is a document sent as is (client.Do marshals its input).
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func verifierPolicyShowCmd(vc func() *client.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print the current policy document",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := vc().Raw(cmd.Context(), "GET", "/v1/policy")
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}

func verifierStatusCmd(g *globals, vc func() *client.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "status [HOST]",
		Short: "Show each host's verdict, per VM, with reasons",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var hs []verifier.HostStatus
			if len(args) == 1 {
				var h verifier.HostStatus
				if err := vc().Do(cmd.Context(), "GET", "/v1/hosts/"+args[0], nil, &h); err != nil {
					return err
				}
				hs = []verifier.HostStatus{h}
			} else if err := vc().Do(cmd.Context(), "GET", "/v1/hosts", nil, &hs); err != nil {
				return err
			}
			var data any = hs
			if len(args) == 1 {
				data = hs[0]
			}
			return g.emit(cmd.OutOrStdout(), data, func(tw *tabwriter.Writer) {
				for _, h := range hs {
					if h.Verdict == nil {
						fmt.Fprintf(tw, "%s\tnot polled yet\n", h.Name)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\tsince %s\tpolicy v%d\tlatency %.1f ms\tpolls %d\n", h.Name, strings.ToUpper(string(h.Verdict.Status)),
						h.Since.Format(time.RFC3339), h.Verdict.PolicyVersion, h.LatencyMs, h.Polls)
					printVerdict(tw, *h.Verdict)
				}
			})
		},
	}
}

func printVerdict(tw io.Writer, v attest.Verdict) {
	printReasons(tw, "", v.Reasons)
	for _, vm := range v.VMs {
		fmt.Fprintf(tw, "  vm %s\t%s\n", vm.Name, vm.Status)
		printReasons(tw, "  ", vm.Reasons)
	}
}

func verifierPollCmd(g *globals, vc func() *client.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "poll HOST",
		Short: "Poll a host now and print the verdict",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v attest.Verdict
			if err := vc().Do(cmd.Context(), "POST", "/v1/hosts/"+args[0]+"/poll", nil, &v); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "%s\t%s\tpolicy v%d\n", v.Host, strings.ToUpper(string(v.Status)), v.PolicyVersion)
				printVerdict(tw, v)
			})
		},
	}
}

func verifierHistoryCmd(g *globals, vc func() *client.Client) *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:   "history HOST",
		Short: "Show a host's stored verdict changes, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var vs []attest.Verdict
			if err := vc().Do(cmd.Context(), "GET", fmt.Sprintf("/v1/hosts/%s/history?n=%d", args[0], n), nil, &vs); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), vs, func(tw *tabwriter.Writer) {
				for _, v := range vs {
					fmt.Fprintf(tw, "%s\t%s\tpolicy v%d\n", v.Time.Format(time.RFC3339), v.Status, v.PolicyVersion)
					printVerdict(tw, v)
				}
			})
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 20, "how many")
	return cmd
}
