package main

import (
	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/vmi/engine"
	"github.com/bulwark-project/bulwark/internal/vmi/monitor"
)

// monitorCmd is the introspection process. The daemon starts it as its own
// unprivileged uid with one socket on fd 3 and hands it read-only guest RAM
// and kernel-image descriptors per request; it is not meant to be run by
// hand.
func monitorCmd() *cobra.Command {
	var cache string
	cmd := &cobra.Command{
		Use:    "monitor",
		Short:  "Introspection process (started by bulwark serve; serves on fd 3)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return monitor.ServeFD3(engine.New(cache).Handle)
		},
	}
	cmd.Flags().StringVar(&cache, "cache", "", "directory for derived kernel profiles")
	return cmd
}
