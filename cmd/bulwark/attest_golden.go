package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/attest/policy"
	"github.com/bulwark-project/bulwark/internal/imagestore"
	"github.com/bulwark-project/bulwark/internal/measure/eventlog"
)

func attestGoldenCmd(g *globals) *cobra.Command {
	var (
		version   int
		boots     []string
		noImages  bool
		strictVMs bool
	)
	cmd := &cobra.Command{
		Use:   "golden",
		Short: "Print a verifier policy of golden values taken from this host (trust on first use) and its image registry",
		Long: `Print a policy document for 'bulwark verifier policy set'.

Host layer: the digests of this daemon's PCR 11 events (bulwark and QEMU
binaries, firmware, seccomp filters, hardening configuration), read from
its event log. That is trust on first use: run it on a freshly installed
reference host that has run nothing else, or check the digests against the
release (sha256sum of the binaries) before using them.

Images: the kernel, initrd and disk digests of every image in the daemon's
image registry (recorded when the image was built or imported), plus each
--boot NAME=KERNEL[,INITRD] whose files are hashed here. Running VMs may
boot any of these images unless --strict-vms is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			raw, err := c.Raw(cmd.Context(), "GET", "/api/v1/attestation/eventlog")
			if err != nil {
				return err
			}
			events, err := eventlog.Parse(raw)
			if err != nil {
				return err
			}
			p, err := policy.FromHostEvents(version, events)
			if err != nil {
				return err
			}
			if !noImages {
				var ents []imagestore.Entry
				if err := c.Do(cmd.Context(), "GET", "/api/v1/images", nil, &ents); err != nil {
					return fmt.Errorf("image registry: %w", err)
				}
				for _, e := range ents {
					if e.Manifest == nil {
						continue
					}
					var k, i, d string
					for _, f := range e.Manifest.Files {
						switch f.Role {
						case imagestore.RoleKernel:
							k = f.SHA256
						case imagestore.RoleInitrd:
							i = f.SHA256
						case imagestore.RoleDisk:
							d = f.SHA256
						}
					}
					if k == "" {
						continue
					}
					if err := p.AddImage(e.Name, k, i, d); err != nil {
						return fmt.Errorf("image %s: %w", e.Name, err)
					}
				}
			}
			for _, b := range boots {
				name, files, ok := strings.Cut(b, "=")
				if !ok || name == "" {
					return fmt.Errorf("--boot %q: want NAME=KERNEL[,INITRD]", b)
				}
				kpath, ipath, _ := strings.Cut(files, ",")
				k, err := sha256File(kpath)
				if err != nil {
					return fmt.Errorf("--boot %s: %w", name, err)
				}
				var i string
				if ipath != "" {
					if i, err = sha256File(ipath); err != nil {
						return fmt.Errorf("--boot %s: %w", name, err)
					}
				}
				if err := p.AddImage(name, k, i, ""); err != nil {
					return fmt.Errorf("--boot %s: %w", name, err)
				}
			}
			if !strictVMs {
				p.VMDefault = &policy.DefaultRule{Images: []string{"*"}}
			}
			if err := p.Validate(); err != nil {
				return err
			}
			doc, err := policy.Marshal(p)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(append(doc, '\n'))
			return err
		},
	}
	cmd.Flags().IntVar(&version, "version", 1, "the policy's version (must exceed the verifier's current one)")
	cmd.Flags().StringArrayVar(&boots, "boot", nil, "also allow NAME=KERNEL[,INITRD] (files hashed here; repeatable)")
	cmd.Flags().BoolVar(&noImages, "no-images", false, "leave out the image registry's images")
	cmd.Flags().BoolVar(&strictVMs, "strict-vms", false, "no default rule: each VM must be given its images in the policy's vms section")
	return cmd
}

// sha256File is the hex SHA-256 of a file the operator named.
func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
