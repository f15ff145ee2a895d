package main

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/install"
)

func init() { extraCommands = append(extraCommands, installCmd) }

// installOutput is what `bulwark install -o json` prints.
type installOutput struct {
	DryRun bool            `json:"dry_run"`
	Binary string          `json:"binary"`
	Files  []installedFile `json:"files"`
	Next   []string        `json:"next"`
}

type installedFile struct {
	install.Result
	Content string `json:"content,omitempty"` // with --dry-run only
}

func installCmd(g *globals) *cobra.Command {
	var prefix, binary string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the hardened systemd unit for bulwark serve",
		Long: `Write the hardened systemd unit embedded in this binary to
PREFIX/etc/systemd/system/bulwark.service, and a sysctl drop-in raising
net.unix.max_dgram_qlen to PREFIX/etc/sysctl.d/60-bulwark.conf, then print
the commands that load them. Nothing is started.

The unit runs --binary (default: this executable). The unit hides /home,
/root and /tmp from the daemon, so the binary must live elsewhere, e.g.
` + install.DefaultBinary + `. Local changes to the unit belong in a drop-in
(systemctl edit bulwark): install rewrites the file. Every option in the
unit is explained in docs/hardening.md; --dry-run prints it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if binary == "" {
				self, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find this executable (pass --binary): %w", err)
				}
				if binary, err = filepath.EvalSymlinks(self); err != nil {
					return fmt.Errorf("find this executable (pass --binary): %w", err)
				}
			}
			files, err := install.Files(prefix, binary)
			if err != nil {
				return err
			}
			if err := install.CheckBinary(prefix, binary); err != nil {
				return err
			}
			out := installOutput{DryRun: dryRun, Binary: binary, Next: install.NextSteps()}
			if dryRun {
				for i, r := range install.Plan(files) {
					out.Files = append(out.Files, installedFile{Result: r, Content: string(files[i].Data)})
				}
			} else {
				res, err := install.Write(files)
				if err != nil {
					return err
				}
				for _, r := range res {
					out.Files = append(out.Files, installedFile{Result: r})
				}
			}
			return g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) { printInstall(tw, out) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&prefix, "prefix", "/", "root of the target file system (for images and chroots)")
	f.StringVar(&binary, "binary", "", "path of the bulwark binary on the target system (default: this executable)")
	f.BoolVar(&dryRun, "dry-run", false, "print the files instead of writing them")
	return cmd
}

func printInstall(tw *tabwriter.Writer, out installOutput) {
	for _, f := range out.Files {
		switch {
		case out.DryRun && f.Changed:
			fmt.Fprintf(tw, "# %s (would be written; --dry-run)\n%s\n", f.Path, f.Content)
		case out.DryRun:
			fmt.Fprintf(tw, "# %s (already up to date)\n%s\n", f.Path, f.Content)
		case f.Changed:
			fmt.Fprintf(tw, "wrote %s\n", f.Path)
		default:
			fmt.Fprintf(tw, "unchanged %s\n", f.Path)
		}
	}
	fmt.Fprintln(tw, "next, as root:")
	for _, n := range out.Next {
		fmt.Fprintf(tw, "  %s\n", n)
	}
}
