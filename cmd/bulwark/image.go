package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/image"
	"github.com/bulwark-project/bulwark/internal/image/debian"
	"github.com/bulwark-project/bulwark/internal/imagestore"
)

// defaultImageStore is STATE/images of the default state directory.
const defaultImageStore = "/var/lib/bulwark/images"

func imageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Guest images: build, list, show, verify"}
	var store string
	cmd.PersistentFlags().StringVar(&store, "images", defaultImageStore, "image store (STATE-DIR/images)")
	cmd.AddCommand(imageBuildCmd(g, &store), imageListCmd(g, &store), imageShowCmd(g, &store), imageVerifyCmd(g, &store))
	return cmd
}

func imageBuildCmd(g *globals, store *string) *cobra.Command {
	var opts image.Options
	var deb debian.Options
	var distro, diskSize string
	build := &cobra.Command{
		Use:   "build",
		Short: "Build a guest image: the busybox initramfs (default) or a Debian server image (--distro debian)",
		Long: `Without --distro: the reproducible busybox initramfs from the host's Debian kernel
and busybox-static, written to --out.

--distro debian: a Debian 12 server image built with mmdebstrap from Debian's
archive (systemd, serial getty, Bulwark's guest units, --packages), stored as
IMAGES/NAME with kernel, initrd, a disk template and a manifest of digests and
provenance. A second build with the same inputs (same archive state) reuses it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch distro {
			case "":
				return buildInitramfs(g, cmd, opts)
			case "debian":
				n, err := parseSize(diskSize)
				if err != nil {
					return fmt.Errorf("--disk-size: %w", err)
				}
				deb.DiskSize, deb.StoreDir, deb.Log = n, *store, cmd.ErrOrStderr()
				deb.BulwarkVersion = strings.TrimSpace(version + " " + commit)
				res, err := debian.Build(context.Background(), deb)
				if err != nil {
					return err
				}
				if res.Note != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), "bulwark:", res.Note)
				}
				return g.emit(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "cached\t%v\nseconds\t%.1f\ndir\t%s\n", res.Cached, res.Seconds, res.Dir)
					manifestTable(tw, res.Manifest, false)
				})
			default:
				return fmt.Errorf("--distro %q: only debian is supported", distro)
			}
		},
	}
	f := build.Flags()
	f.StringVar(&distro, "distro", "", "build a distribution server image: debian (empty: the busybox initramfs)")
	f.StringVar(&opts.OutDir, "out", "/var/lib/bulwark/images/default", "busybox image: output directory")
	f.StringVar(&opts.KernelVersion, "kernel-version", "", "busybox image: kernel version under /lib/modules (default: newest with a /boot/vmlinuz)")
	f.StringVar(&opts.KernelPath, "kernel", "", "busybox image: kernel image (default /boot/vmlinuz-VERSION)")
	f.StringVar(&opts.BusyboxPath, "busybox", "/bin/busybox", "busybox image: statically linked busybox")
	f.StringSliceVar(&opts.Modules, "module", nil, "busybox image: kernel module to include with its dependencies (repeatable; default: virtio set)")
	f.StringVar(&deb.Name, "name", debian.DefaultName, "debian image: image name (IMAGES/NAME)")
	f.StringSliceVar(&deb.Packages, "packages", nil, "debian image: extra packages, comma-separated (e.g. openssh-server,nginx)")
	f.StringVar(&deb.Suite, "suite", debian.DefaultSuite, "debian image: suite")
	f.StringVar(&deb.Mirror, "mirror", debian.DefaultMirror, "debian image: archive URL")
	f.StringVar(&deb.SecurityMirror, "security-mirror", debian.DefaultSecurityMirror, "debian image: security archive URL (\"-\": none)")
	f.Int64Var(&deb.SourceDateEpoch, "source-date-epoch", 0, "debian image: SOURCE_DATE_EPOCH (0: the archive's newest InRelease Date)")
	f.StringVar(&diskSize, "disk-size", "2G", "debian image: root file system size (M or G suffix)")
	f.StringVar(&deb.Format, "format", debian.DefaultFormat, "debian image: disk template format, qcow2 or raw")
	f.BoolVar(&deb.Rebuild, "rebuild", false, "debian image: build even when a cached image matches")
	return build
}

func buildInitramfs(g *globals, cmd *cobra.Command, opts image.Options) error {
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
}

func imageListCmd(g *globals, store *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the images in the store (manifests only; verify checks the files)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ents, err := imagestore.Store{Dir: *store}.List()
			if err != nil {
				return err
			}
			if ents == nil {
				ents = []imagestore.Entry{}
			}
			return g.emit(cmd.OutOrStdout(), ents, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tBUILT\tFILES")
				for _, e := range ents {
					if e.Manifest == nil {
						fmt.Fprintf(tw, "%s\t-\t-\t-\tERROR: %s\n", e.Name, e.Err)
						continue
					}
					m, built := e.Manifest, "-"
					if m.Provenance != nil {
						built = m.Provenance.BuiltAt.Format("2006-01-02 15:04")
					}
					var names []string
					for _, f := range m.Files {
						names = append(names, f.Name)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, m.Kind, m.Version, built, strings.Join(names, " "))
				}
			})
		},
	}
}

func imageShowCmd(g *globals, store *string) *cobra.Command {
	var packages bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an image's manifest: files, digests, provenance",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := imagestore.Store{Dir: *store}.Load(args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), m, func(tw *tabwriter.Writer) { manifestTable(tw, m, packages) })
		},
	}
	cmd.Flags().BoolVar(&packages, "packages", false, "list every installed package with its version")
	return cmd
}

func imageVerifyCmd(g *globals, store *string) *cobra.Command {
	return &cobra.Command{
		Use:   "verify NAME",
		Short: "Check every file of an image against the SHA-256 digests of its manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := imagestore.Store{Dir: *store}
			checks, verr := s.Verify(args[0])
			if checks == nil && verr != nil {
				return verr
			}
			dir, _ := s.ImageDir(args[0])
			out := map[string]any{"image": args[0], "dir": dir, "ok": verr == nil, "files": checks}
			err := g.emit(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				for _, c := range checks {
					status := "ok"
					if !c.OK {
						status = "MISMATCH: " + c.Error
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Role, c.Name, status)
				}
			})
			if err != nil {
				return err
			}
			return verr
		},
	}
}

// manifestTable prints a manifest for people.
func manifestTable(tw *tabwriter.Writer, m *imagestore.Manifest, packages bool) {
	fmt.Fprintf(tw, "name\t%s\nversion\t%s\nkind\t%s\n", m.Name, m.Version, m.Kind)
	if m.Cmdline != "" {
		fmt.Fprintf(tw, "cmdline\t%s\n", m.Cmdline)
	}
	for _, f := range m.Files {
		extra := ""
		if f.Format != "" {
			extra = fmt.Sprintf(" (%s, virtual %d MiB)", f.Format, f.VirtualSize>>20)
		}
		fmt.Fprintf(tw, "%s\t%s %d bytes%s\n%s_sha256\t%s\n", f.Role, f.Name, f.Size, extra, f.Role, f.SHA256)
	}
	p := m.Provenance
	if p == nil {
		return
	}
	fmt.Fprintf(tw, "builder\t%s (%s)\n", p.Builder, p.BulwarkVersion)
	for _, t := range p.Tools {
		fmt.Fprintf(tw, "tool\t%s: %s\n", t.Name, t.Version)
	}
	if p.Distro != "" {
		fmt.Fprintf(tw, "distro\t%s %s %s (%s)\n", p.Distro, p.Suite, p.Architecture, p.Variant)
	}
	for _, s := range p.Sources {
		fmt.Fprintf(tw, "source\t%s\n", s)
	}
	for suite, d := range p.Archive {
		fmt.Fprintf(tw, "archive\t%s InRelease sha256 %s\n", suite, d)
	}
	if len(p.Requested) > 0 {
		fmt.Fprintf(tw, "requested\t%s\n", strings.Join(p.Requested, " "))
	}
	fmt.Fprintf(tw, "installed\t%d packages\n", len(p.Installed))
	if packages {
		for _, pk := range p.Installed {
			fmt.Fprintf(tw, "  %s\t%s\n", pk.Name, pk.Version)
		}
	}
	fmt.Fprintf(tw, "source_date_epoch\t%d\nbuilt_at\t%s\n", p.SourceDateEpoch, p.BuiltAt.Format("2006-01-02T15:04:05Z"))
	if p.BuildSeconds > 0 {
		fmt.Fprintf(tw, "build_seconds\t%.1f\n", p.BuildSeconds)
	}
	if p.RootTreeSHA256 != "" {
		fmt.Fprintf(tw, "root_tree_sha256\t%s\n", p.RootTreeSHA256)
	}
	if p.CacheKey != "" {
		fmt.Fprintf(tw, "cache_key\t%s\n", p.CacheKey)
	}
}

// parseSize reads sizes such as 2G, 512M or a byte count.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, errors.New("want a positive size such as 2G or 512M")
	}
	return n * mult, nil
}
