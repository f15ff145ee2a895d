package main

import "github.com/spf13/cobra"

// extraCommands are constructors of top-level commands that register
// themselves from their own files (func init), so that adding a command
// does not touch main.go.
var extraCommands []func(*globals) *cobra.Command
