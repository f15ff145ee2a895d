package main

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// Groups are named sets of users; membership is kept on the users, so these
// commands read and patch users.
func groupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Groups of users (permission entries may name a group)"}
	members := func(cmd *cobra.Command) (map[string][]string, map[string][]string, error) {
		out, err := g.call(cmd.Context(), "GET", "/api/v1/users", nil)
		if err != nil {
			return nil, nil, err
		}
		byGroup, byUser := map[string][]string{}, map[string][]string{}
		for _, x := range asList(out) {
			m, _ := x.(map[string]any)
			name := fmt.Sprint(m["name"])
			byUser[name] = []string{}
			for _, gr := range asList(m["groups"]) {
				byGroup[fmt.Sprint(gr)] = append(byGroup[fmt.Sprint(gr)], name)
				byUser[name] = append(byUser[name], fmt.Sprint(gr))
			}
		}
		return byGroup, byUser, nil
	}
	list := &cobra.Command{
		Use: "list", Short: "List groups and their members", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			byGroup, _, err := members(cmd)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(byGroup))
			for k := range byGroup {
				names = append(names, k)
			}
			sort.Strings(names)
			return g.emit(cmd.OutOrStdout(), byGroup, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "GROUP\tMEMBERS")
				for _, n := range names {
					fmt.Fprintf(tw, "%s\t%v\n", n, byGroup[n])
				}
			})
		},
	}
	change := func(use, short string, add bool) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				group, user := args[0], args[1]
				_, byUser, err := members(cmd)
				if err != nil {
					return err
				}
				cur, ok := byUser[user]
				if !ok {
					return fmt.Errorf("user %q does not exist", user)
				}
				next := slices.DeleteFunc(slices.Clone(cur), func(s string) bool { return s == group })
				if add {
					next = append(next, group)
				}
				out, err := g.call(cmd.Context(), "PATCH", "/api/v1/users/"+url.PathEscape(user), obj{"groups": next})
				if err != nil {
					return err
				}
				return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "%s: groups %v\n", user, next)
				})
			},
		}
	}
	cmd.AddCommand(list, change("add-member GROUP USER", "Add a user to a group", true),
		change("remove-member GROUP USER", "Remove a user from a group", false))
	return cmd
}
