// Command bulwark is Bulwark's single binary: the daemon (serve) and the CLI
// that talks to it. Commands stay thin; the work is in internal/.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/client"
	"github.com/bulwark-project/bulwark/internal/jail"
	"github.com/bulwark-project/bulwark/internal/jail/seccomp"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "0.1.0-dev"
	commit  = ""
)

type globals struct {
	socket string
	output string
	token  string
	server string
	ca     string
}

func main() {
	// The jail side of starting a jailed hypervisor or monitor: before any
	// command-line handling, as PID 1 of a fresh PID namespace.
	if len(os.Args) > 1 && os.Args[1] == jail.Command {
		jail.Main(seccomp.Install)
	}
	g := &globals{}
	root := &cobra.Command{
		Use:           "bulwark",
		Short:         "Bulwark: a security-first virtualization host",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// A command annotated outputIsFile (`vmi dump VM -o FILE`) takes
			// a file name in -o.
			if g.output != "table" && g.output != "json" && cmd.Annotations[outputIsFile] == "" {
				return fmt.Errorf("--output %q: must be table or json", g.output)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "daemon socket (default $BULWARK_SOCKET or "+client.DefaultSocket+")")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.PersistentFlags().StringVar(&g.server, "server", "", "daemon's HTTPS URL instead of the socket, e.g. https://127.0.0.1:8443 (default $BULWARK_SERVER)")
	root.PersistentFlags().StringVar(&g.ca, "ca", "", "CA certificate for --server (default $BULWARK_CA)")
	root.PersistentFlags().StringVar(&g.token, "token", "", "API token (default $BULWARK_TOKEN; none: the local root's identity on the socket)")
	root.AddCommand(serveCmd(), vmCmd(g), imageCmd(g), versionCmd(g),
		networkCmd(g), sgCmd(g), ipsetCmd(g), portCmd(g), fwCmd(g), auditCmd(g),
		userCmd(g), groupCmd(g), roleCmd(g), permCmd(g), tokenCmd(g), loginCmd(g), whoamiCmd(g), adminCmd(g), consoleCmd(g), vmiCmd(g), eventsCmd(g), withResponseCmds(g, monitorCmd()))
	for _, c := range extraCommands {
		root.AddCommand(c(g))
	}
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) { // the command already said why
			os.Exit(ee.code)
		}
		printError(g, err)
		os.Exit(1)
	}
}

func printError(g *globals, err error) {
	if g.output == "json" {
		out := map[string]string{"error": err.Error()}
		var ce *client.Error
		if errors.As(err, &ce) && ce.Field != "" {
			out["field"] = ce.Field
		}
		b, _ := json.Marshal(out)
		fmt.Fprintln(os.Stderr, string(b))
		return
	}
	fmt.Fprintln(os.Stderr, "error:", err)
}

func (g *globals) client() *client.Client {
	c := client.New(client.SocketFromEnv(g.socket))
	if srv := firstNonEmpty(g.server, os.Getenv("BULWARK_SERVER")); srv != "" {
		hc, err := client.NewHTTPS(srv, firstNonEmpty(g.ca, os.Getenv("BULWARK_CA")))
		if err != nil {
			printError(g, err)
			os.Exit(1)
		}
		c = hc
	}
	tok := g.token
	if tok == "" {
		tok = os.Getenv("BULWARK_TOKEN")
	}
	if tok != "" {
		c = c.WithToken(tok)
	}
	return c
}

// emit prints v as JSON, or calls table to print it for people.
func (g *globals) emit(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	if g.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := map[string]string{"version": version, "commit": commit}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "bulwark %s %s\n", version, commit)
			})
		},
	}
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}
