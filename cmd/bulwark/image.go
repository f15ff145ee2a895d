package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/image"
)

func imageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Guest images"}
	var opts image.Options
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the reproducible guest initramfs from the host's Debian kernel and busybox-static",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := image.Build(opts)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "kernel_version\t%s\n", res.KernelVersion)
				fmt.Fprintf(tw, "kernel\t%s\nkernel_sha256\t%s\n", res.Kernel, res.KernelSHA256)
				fmt.Fprintf(tw, "initrd\t%s\ninitrd_sha256\t%s\n", res.Initrd, res.InitrdSHA256)
				fmt.Fprintf(tw, "modules\t%s\n", strings.Join(res.Modules, " "))
			})
		},
	}
	f := build.Flags()
	f.StringVar(&opts.OutDir, "out", "/var/lib/bulwark/images/default", "output directory")
	f.StringVar(&opts.KernelVersion, "kernel-version", "", "kernel version under /lib/modules (default: newest with a /boot/vmlinuz)")
	f.StringVar(&opts.KernelPath, "kernel", "", "kernel image (default /boot/vmlinuz-VERSION)")
	f.StringVar(&opts.BusyboxPath, "busybox", "/bin/busybox", "statically linked busybox")
	f.StringSliceVar(&opts.Modules, "module", nil, "kernel module to include with its dependencies (repeatable; default: virtio set)")
	cmd.AddCommand(build)
	return cmd
}
