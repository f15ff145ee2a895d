package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bulwark-project/bulwark/internal/client"
)

// loginCmd is `bulwark login USER`: it exchanges a password for a session
// token. The secret goes to stdout alone, so that
//
//	export BULWARK_TOKEN=$(bulwark login alice)
//
// works; the hint goes to stderr.
func loginCmd(g *globals) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "login USER",
		Short: "Log in with a password and print a session token (valid 12 h)",
		Long: "Log in with a password and print a session token, valid 12 hours. The password is read\n" +
			"from the terminal without echo, or from the first line of stdin with --password-stdin.\n" +
			"Five failed logins within 15 minutes lock the user name and the source for 15 minutes.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, fromStdin, "Password for "+args[0]+": ", false)
			if err != nil {
				return err
			}
			// No token: the password is the credential.
			var out map[string]any
			c := client.New(client.SocketFromEnv(g.socket))
			if err := c.Do(cmd.Context(), "POST", "/api/v1/login", obj{"user": args[0], "password": pw}, &out); err != nil {
				return err
			}
			if g.output == "json" {
				return g.emit(cmd.OutOrStdout(), out, nil)
			}
			fmt.Fprintln(cmd.OutOrStdout(), out["secret"])
			tok, _ := out["token"].(map[string]any)
			fmt.Fprintf(cmd.ErrOrStderr(), "session for %s until %v; use it with:\n  export BULWARK_TOKEN=<the token above>\n", args[0], tok["expires"])
			return nil
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin")
	return cmd
}

// passwdCmd is `bulwark user passwd USER`: it sets a user's password
// (needs User.Manage on /users/USER; the local root may always).
func passwdCmd(g *globals) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "passwd USER",
		Short: "Set a user's password (12 to 256 bytes); ends the user's sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, fromStdin, "New password for "+args[0]+": ", true)
			if err != nil {
				return err
			}
			out, err := g.call(cmd.Context(), "POST", "/api/v1/users/"+url.PathEscape(args[0])+"/password", obj{"password": pw})
			if err != nil {
				return err
			}
			if out == nil {
				out = obj{"user": args[0], "password_set": true}
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "password set for %s\n", args[0]) })
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin")
	return cmd
}

// readPassword reads the first line of stdin with --password-stdin, or
// prompts on the terminal without echo (twice when confirm is set).
func readPassword(cmd *cobra.Command, fromStdin bool, prompt string, confirm bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("stdin is not a terminal: pass the password with --password-stdin")
	}
	ask := func(p string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), p)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	pw, err := ask(prompt)
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := ask("Again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the passwords do not match")
		}
	}
	return pw, nil
}
