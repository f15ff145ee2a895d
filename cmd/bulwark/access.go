package main

import (
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func userCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Users (authenticate with API tokens)"}
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a user with no permissions", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "POST", "/api/v1/users", obj{"name": args[0]})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "created user %s\n", args[0]) })
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List users", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/users", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tDISABLED\tGROUPS")
				for _, x := range asList(out) {
					m, _ := x.(map[string]any)
					fmt.Fprintf(tw, "%v\t%v\t%s\n", m["name"], m["disabled"], joinAny(m["groups"]))
				}
			})
		},
	}
	patch := func(use, short string, body func(args []string) obj, n int) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(n),
			RunE: func(cmd *cobra.Command, args []string) error {
				out, err := g.call(cmd.Context(), "PATCH", "/api/v1/users/"+url.PathEscape(args[0]), body(args))
				if err != nil {
					return err
				}
				return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "updated user %s\n", args[0]) })
			},
		}
	}
	disable := patch("disable NAME", "Disable a user: their tokens stop working at once", func([]string) obj { return obj{"disabled": true} }, 1)
	enable := patch("enable NAME", "Enable a user", func([]string) obj { return obj{"disabled": false} }, 1)
	groups := patch("groups NAME [GROUP...]", "Set a user's groups (none: clear)", func(a []string) obj {
		return obj{"groups": append([]string{}, a[1:]...)}
	}, 1)
	groups.Args = cobra.MinimumNArgs(1)
	cmd.AddCommand(create, list, disable, enable, groups, passwdCmd(g), deleteCmd(g, "user", "/api/v1/users/"))
	return cmd
}

func roleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Roles: named sets of privileges (new roles are empty)"}
	create := &cobra.Command{
		Use: "create NAME", Short: "Create an empty role", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "POST", "/api/v1/roles", obj{"name": args[0]})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "created role %s (no privileges)\n", args[0]) })
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List roles and their privileges", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/roles", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tBUILT-IN\tPRIVILEGES")
				for _, x := range asList(out) {
					m, _ := x.(map[string]any)
					fmt.Fprintf(tw, "%v\t%v\t%s\n", m["Name"], m["BuiltIn"], joinAny(m["Privs"]))
				}
			})
		},
	}
	privs := &cobra.Command{
		Use: "privileges", Short: "The privilege catalogue", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/privileges", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				for _, x := range asList(out) {
					m, _ := x.(map[string]any)
					fmt.Fprintf(tw, "%v\t%v\n", m["name"], m["description"])
				}
			})
		},
	}
	edit := func(verb string, add bool) *cobra.Command {
		return &cobra.Command{
			Use: verb + " ROLE PRIVILEGE", Short: strings.ToUpper(verb[:1]) + verb[1:] + " one privilege", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				var (
					out any
					err error
				)
				if add {
					out, err = g.call(cmd.Context(), "POST", "/api/v1/roles/"+url.PathEscape(args[0])+"/privileges", obj{"privilege": args[1]})
				} else {
					out, err = g.call(cmd.Context(), "DELETE", "/api/v1/roles/"+url.PathEscape(args[0])+"/privileges/"+url.PathEscape(args[1]), nil)
				}
				if err != nil {
					return err
				}
				return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
					m, _ := out.(map[string]any)
					fmt.Fprintf(tw, "%v: %s\n", m["Name"], joinAny(m["Privs"]))
				})
			},
		}
	}
	cmd.AddCommand(create, list, privs, edit("add", true), edit("remove", false),
		deleteCmd(g, "custom role (refused while a permission entry names it)", "/api/v1/roles/"))
	return cmd
}

// whoamiCmd shows the caller's identity and effective privileges.
func whoamiCmd(g *globals) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use: "whoami", Short: "Who the daemon takes you for: user, groups, token scope and privileges on a path", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/whoami?path="+url.QueryEscape(path), nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				m, _ := out.(map[string]any)
				fmt.Fprintf(tw, "user\t%v\n", m["user"])
				fmt.Fprintf(tw, "source\t%v\n", m["source"])
				fmt.Fprintf(tw, "groups\t%s\n", joinAny(m["groups"]))
				if sc, ok := m["token_scope"]; ok {
					fmt.Fprintf(tw, "token scope\t%s\n", joinAny(sc))
				}
				fmt.Fprintf(tw, "privileges on %v\t%s\n", m["path"], joinAny(m["privileges"]))
			})
		},
	}
	cmd.Flags().StringVar(&path, "path", "/", "object path to show privileges on, e.g. /vms/web1")
	return cmd
}

func permCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "perm", Short: "Permission entries: (user or group, role, object path)"}
	var p struct {
		user, group, role, path string
		noPropagate             bool
	}
	grant := &cobra.Command{
		Use: "grant --role R --path P (--user U | --group G)", Short: "Grant a role on an object path", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			body := obj{"role": p.role, "path": p.path, "propagate": !p.noPropagate}
			setIf(body, "user", p.user)
			setIf(body, "group", p.group)
			out, err := g.call(cmd.Context(), "POST", "/api/v1/permissions", body)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				m, _ := out.(map[string]any)
				fmt.Fprintf(tw, "granted %v (id %v)\n", p.role, m["id"])
			})
		},
	}
	f := grant.Flags()
	f.StringVar(&p.user, "user", "", "user")
	f.StringVar(&p.group, "group", "", "group")
	f.StringVar(&p.role, "role", "", "role")
	f.StringVar(&p.path, "path", "/", "object path: /, /vms/NAME, /networks/NAME, /pools/NAME, ...")
	f.BoolVar(&p.noPropagate, "no-propagate", false, "apply to the path only, not below it")
	list := &cobra.Command{
		Use: "list", Short: "List permission entries", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/permissions", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tPATH\tSUBJECT\tROLE\tPROPAGATE")
				for _, x := range asList(out) {
					m, _ := x.(map[string]any)
					subj := fmt.Sprintf("user:%v", m["user"])
					if gr, _ := m["group"].(string); gr != "" {
						subj = "group:" + gr
					}
					fmt.Fprintf(tw, "%v\t%v\t%s\t%v\t%v\n", m["id"], m["path"], subj, m["role"], m["propagate"])
				}
			})
		},
	}
	revoke := deleteCmd(g, "permission", "/api/v1/permissions/")
	revoke.Use, revoke.Short = "revoke ID", "Remove a permission entry"
	cmd.AddCommand(grant, list, revoke)
	return cmd
}

func tokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "API tokens"}
	var (
		ttl   time.Duration
		desc  string
		scope []string
	)
	create := &cobra.Command{
		Use: "create USER", Short: "Issue a token (the secret is printed once)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := obj{"user": args[0], "ttl_seconds": int64(ttl.Seconds()), "description": desc}
			if len(scope) > 0 {
				body["scope"] = scope
			}
			out, err := g.call(cmd.Context(), "POST", "/api/v1/tokens", body)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				m, _ := out.(map[string]any)
				fmt.Fprintf(tw, "%v\n", m["secret"])
			})
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "lifetime")
	create.Flags().StringVar(&desc, "description", "", "what it is for")
	create.Flags().StringArrayVar(&scope, "scope", nil, "narrow the token to this privilege (repeatable), e.g. --scope VM.Audit")
	list := &cobra.Command{
		Use: "list", Short: "List tokens (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := g.call(cmd.Context(), "GET", "/api/v1/tokens", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tUSER\tEXPIRES\tDESCRIPTION")
				for _, x := range asList(out) {
					m, _ := x.(map[string]any)
					fmt.Fprintf(tw, "%v\t%v\t%v\t%v\n", m["id"], m["user"], m["expires"], orDash(m["description"]))
				}
			})
		},
	}
	revoke := deleteCmd(g, "token", "/api/v1/tokens/")
	revoke.Use, revoke.Short = "revoke ID", "Revoke a token: it fails from the next request on"
	cmd.AddCommand(create, list, revoke)
	return cmd
}
