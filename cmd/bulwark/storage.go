package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/storage"
)

func init() { extraCommands = append(extraCommands, volumeCmd, storagePoolCmd) }

// volumePath turns "POOL/NAME" or "NAME" (pool default) into the API path
// of the volume.
func volumePath(ref string) (string, error) {
	if !strings.Contains(ref, "/") {
		ref = storage.DefaultPool + "/" + ref
	}
	pool, name, err := storage.ParseRef(ref)
	if err != nil {
		return "", err
	}
	return "/api/v1/storage/pools/" + pool + "/volumes/" + name, nil
}

func volumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Storage volumes (disk images in pools); VOLUME is POOL/NAME or NAME in the default pool"}
	var pool, format, size, sha, out string

	create := &cobra.Command{
		Use: "create NAME --size SIZE", Short: "Create an empty sparse volume (qcow2 unless --format raw)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := storage.ParseSize(size)
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			body := obj{"name": args[0], "size": n}
			setIf(body, "format", format)
			v, err := g.call(cmd.Context(), "POST", "/api/v1/storage/pools/"+url.PathEscape(pool)+"/volumes", body)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) { printVolumes(tw, []any{v}) })
		},
	}
	create.Flags().StringVar(&pool, "pool", storage.DefaultPool, "pool")
	create.Flags().StringVar(&format, "format", "", "qcow2 (default) or raw")
	create.Flags().StringVar(&size, "size", "", "virtual size: bytes or with K, M, G, T (binary units)")
	create.MarkFlagRequired("size")

	list := &cobra.Command{
		Use: "list", Short: "List volumes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/storage/volumes"
			if cmd.Flags().Changed("pool") {
				path += "?pool=" + url.QueryEscape(pool)
			}
			v, err := g.call(cmd.Context(), "GET", path, nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) { printVolumes(tw, asList(v)) })
		},
	}
	list.Flags().StringVar(&pool, "pool", storage.DefaultPool, "only this pool")

	show := &cobra.Command{
		Use: "show VOLUME", Short: "Show a volume: record, allocation, clones, users, problems", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := volumePath(args[0])
			if err != nil {
				return err
			}
			v, err := g.call(cmd.Context(), "GET", p, nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) { printKV(tw, v) })
		},
	}

	resize := &cobra.Command{
		Use: "resize VOLUME SIZE", Short: "Grow a volume (never shrinks)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := volumePath(args[0])
			if err != nil {
				return err
			}
			n, err := storage.ParseSize(args[1])
			if err != nil {
				return err
			}
			v, err := g.call(cmd.Context(), "POST", p+"/resize", obj{"size": n})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) { printVolumes(tw, []any{v}) })
		},
	}

	clone := &cobra.Command{
		Use: "clone BASE NEW", Short: "Make NEW a thin qcow2 overlay on BASE (same pool); BASE stays read-only while it has clones", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := volumePath(args[0])
			if err != nil {
				return err
			}
			v, err := g.call(cmd.Context(), "POST", p+"/clone", obj{"name": args[1]})
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) { printVolumes(tw, []any{v}) })
		},
	}

	imp := &cobra.Command{
		Use: "import VOLUME FILE|- --sha256 HEX", Short: "Import an image from a file or stdin; refused unless its SHA-256 matches (nothing is kept then)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := volumePath(args[0])
			if err != nil {
				return err
			}
			if sha == "" {
				return fmt.Errorf("--sha256 is required: the image's SHA-256 from where you got it (sha256sum FILE)")
			}
			var r io.Reader = os.Stdin
			size := int64(-1)
			if args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return err
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
					size = fi.Size()
				}
				r = f
			}
			q := url.Values{"sha256": {strings.ToLower(sha)}}
			if format != "" {
				q.Set("format", format)
			}
			var v any
			if err := g.client().Upload(cmd.Context(), "PUT", p+"/content?"+q.Encode(), r, size, &v); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) { printVolumes(tw, []any{v}) })
		},
	}
	imp.Flags().StringVar(&sha, "sha256", "", "expected SHA-256 of the bytes (required)")
	imp.Flags().StringVar(&format, "format", "", "raw or qcow2 (default: qcow2 if the file has its magic, else raw)")

	exp := &cobra.Command{
		Use: "export VOLUME -O FILE|-", Short: "Write a volume's file (raw or qcow2) to a file or stdout and print its SHA-256", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := volumePath(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("-O FILE (or - for stdout) is required")
			}
			var w io.Writer = cmd.OutOrStdout()
			if out != "-" {
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			h := sha256.New()
			n, err := g.client().Download(cmd.Context(), p+"/content", io.MultiWriter(w, h))
			if err != nil {
				if out != "-" {
					os.Remove(out)
				}
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d bytes, sha256 %s\n", n, hex.EncodeToString(h.Sum(nil)))
			return nil
		},
	}
	exp.Flags().StringVarP(&out, "out", "O", "", "output file (created, 0600; - for stdout)")

	del := &cobra.Command{
		Use: "delete VOLUME", Short: "Delete a volume no VM uses and that has no clones", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := volumePath(args[0])
			if err != nil {
				return err
			}
			if _, err := g.call(cmd.Context(), "DELETE", p, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted volume %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, show, resize, clone, imp, exp, del)
	return cmd
}

// storagePoolCmd is `bulwark storage-pool`; `bulwark pool` is for resource
// pools (CPU and memory).
func storagePoolCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "storage-pool", Short: "Storage pools (directories holding volumes)"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List storage pools with their space", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := g.call(cmd.Context(), "GET", "/api/v1/storage/pools", nil)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tPATH\tVOLUMES\tALLOCATED\tFREE\tCAPACITY\tSTATUS")
				for _, x := range asList(v) {
					m, _ := x.(map[string]any)
					status := "ok"
					if ok, _ := m["available"].(bool); !ok {
						status = fmt.Sprint(m["problem"])
					}
					fmt.Fprintf(tw, "%v\t%v\t%v\t%s\t%s\t%s\t%s\n", m["name"], m["path"], m["volumes"],
						human(m["allocated"]), human(m["free"]), human(m["capacity"]), status)
				}
			})
		},
	})
	return cmd
}

func printVolumes(tw *tabwriter.Writer, list []any) {
	fmt.Fprintln(tw, "POOL\tNAME\tFORMAT\tSIZE\tBASE\tSHA256")
	for _, x := range list {
		m, _ := x.(map[string]any)
		base, sum := "-", "-"
		if b, _ := m["base"].(string); b != "" {
			base = b
		}
		if s, _ := m["sha256"].(string); len(s) > 12 {
			sum = s[:12] + "..."
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%s\t%s\t%s\n", m["pool"], m["name"], m["format"], human(m["size"]), base, sum)
	}
}

// printKV prints an object's fields one per line, in the JSON's key order
// as decoded (sorted).
func printKV(tw *tabwriter.Writer, v any) {
	m, _ := v.(map[string]any)
	for _, k := range []string{"pool", "name", "format", "size", "allocated", "base", "sha256", "created", "clones", "used_by", "problem"} {
		if x, ok := m[k]; ok {
			if k == "size" || k == "allocated" {
				x = human(x)
			}
			fmt.Fprintf(tw, "%s\t%v\n", k, x)
		}
	}
}

// human prints a JSON number of bytes with a binary unit.
func human(v any) string {
	f, ok := v.(float64)
	if !ok {
		return "-"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", f)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
