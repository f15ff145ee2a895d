package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// adminCmd bootstraps the first administrator. It talks to the daemon as the
// local root on the Unix socket (the bootstrap administrator) and prints the
// one-time password exactly once; nothing else ever shows it.
func adminCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Bootstrap administration"}
	var name string
	initc := &cobra.Command{
		Use: "init", Short: "Create the first administrator with a one-time password (run as root on the host)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if _, err := g.call(ctx, "POST", "/api/v1/users", obj{"name": name}); err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
			b := make([]byte, 18)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			pw := base64.RawURLEncoding.EncodeToString(b)
			if _, err := g.call(ctx, "POST", "/api/v1/users/"+name+"/password", obj{"password": pw}); err != nil {
				return fmt.Errorf("set password: %w", err)
			}
			if _, err := g.call(ctx, "POST", "/api/v1/permissions", obj{"user": name, "role": "Administrator", "path": "/", "propagate": true}); err != nil {
				return fmt.Errorf("grant Administrator: %w", err)
			}
			out := obj{"user": name, "password": pw, "role": "Administrator", "path": "/"}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "administrator %q created with Administrator on /\n", name)
				fmt.Fprintf(tw, "one-time password (shown only now; change it with `bulwark user passwd %s`):\n%s\n", name, pw)
			})
		},
	}
	initc.Flags().StringVar(&name, "user", "admin", "name of the administrator")
	cmd.AddCommand(initc)
	return cmd
}
