package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-project/bulwark/internal/storage"
	"github.com/bulwark-project/bulwark/internal/vm"
)

func snapshotPath(vmName string, rest ...string) string {
	p := "/api/v1/vms/" + url.PathEscape(vmName) + "/snapshots"
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// vmSnapshotCmd is `bulwark vm snapshot create|list|show|revert|delete|restore|verify`.
func vmSnapshotCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Disk snapshots of a VM: take, list, revert, delete, restore as a new VM, verify digests"}
	one := func(use, short string, run func(cmd *cobra.Command, vmName, snap string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error { return run(cmd, args[0], args[1]) }}
	}
	create := one("create VM SNAPSHOT", "Snapshot a VM's disks (stopped, or running: the guest keeps running)", func(cmd *cobra.Command, vmName, snap string) error {
		var s storage.Snapshot
		if err := g.client().Do(cmd.Context(), "POST", snapshotPath(vmName), map[string]string{"name": snap}, &s); err != nil {
			return err
		}
		return g.emit(cmd.OutOrStdout(), s, func(tw *tabwriter.Writer) { printSnapshotDisks(tw, s) })
	})
	list := &cobra.Command{Use: "list VM", Short: "List a VM's snapshots, oldest first", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var l []storage.Snapshot
			if err := g.client().Do(cmd.Context(), "GET", snapshotPath(args[0]), nil, &l); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), l, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tCREATED\tRUNNING\tFROZEN LAYERS")
				for _, s := range l {
					var fr []string
					for _, d := range s.Disks {
						if f := d.Frozen(); f != "" {
							fr = append(fr, f)
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", s.Name, s.Created.Format("2006-01-02 15:04:05Z"), s.Running, strings.Join(fr, ","))
				}
			})
		}}
	show := one("show VM SNAPSHOT", "Show a snapshot: its disks, layers and digests", func(cmd *cobra.Command, vmName, snap string) error {
		var s storage.Snapshot
		if err := g.client().Do(cmd.Context(), "GET", snapshotPath(vmName, snap), nil, &s); err != nil {
			return err
		}
		return g.emit(cmd.OutOrStdout(), s, func(tw *tabwriter.Writer) { printSnapshotDisks(tw, s) })
	})
	revert := one("revert VM SNAPSHOT", "Put a stopped VM's disks back to a snapshot (later changes are lost)", func(cmd *cobra.Command, vmName, snap string) error {
		var s storage.Snapshot
		if err := g.client().Do(cmd.Context(), "POST", snapshotPath(vmName, snap, "revert"), nil, &s); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "VM %s reverted to snapshot %s\n", vmName, snap)
		return nil
	})
	del := one("delete VM SNAPSHOT", "Delete a snapshot (the newest, or one nothing depends on)", func(cmd *cobra.Command, vmName, snap string) error {
		if err := g.client().Do(cmd.Context(), "DELETE", snapshotPath(vmName, snap), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "snapshot %s of VM %s deleted\n", snap, vmName)
		return nil
	})
	restore := &cobra.Command{Use: "restore VM SNAPSHOT NEW-VM", Short: "Create a new VM from a snapshot (new overlays on its verified layers, new MACs and addresses)", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v vm.VM
			if err := g.client().Do(cmd.Context(), "POST", snapshotPath(args[0], args[1], "restore"), map[string]string{"name": args[2]}, &v); err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "VM %s created from snapshot %s of %s (state %s)\n", v.Spec.Name, args[1], args[0], v.State)
			})
		}}
	verify := one("verify VM SNAPSHOT", "Recompute the SHA-256 of every layer of a snapshot; exits non-zero on a mismatch", func(cmd *cobra.Command, vmName, snap string) error {
		var rep storage.VerifyReport
		if err := g.client().Do(cmd.Context(), "GET", snapshotPath(vmName, snap, "verify"), nil, &rep); err != nil {
			return err
		}
		err := g.emit(cmd.OutOrStdout(), rep, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "LAYER\tSHA256\tRESULT")
			bad := map[string]storage.DigestMismatch{}
			for _, m := range rep.Mismatches {
				bad[m.Volume] = m
			}
			for _, l := range rep.Layers {
				res := "ok"
				if m, ok := bad[l.Volume]; ok {
					res = "MISMATCH: " + m.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Volume, l.SHA256, res)
			}
		})
		if err == nil && !rep.OK {
			err = errors.New(rep.Err().Error())
		}
		return err
	})
	cmd.AddCommand(create, list, show, revert, del, restore, verify)
	return cmd
}

func printSnapshotDisks(tw *tabwriter.Writer, s storage.Snapshot) {
	fmt.Fprintf(tw, "snapshot %s of VM %s, %s, running: %v\n", s.Name, s.VM, s.Created.Format("2006-01-02 15:04:05Z"), s.Running)
	fmt.Fprintln(tw, "DISK\tVOLUME\tLAYER\tSHA256")
	for _, d := range s.Disks {
		vol := d.Volume
		if vol == "" && d.Disk < len(s.Spec.Disks) {
			vol = s.Spec.Disks[d.Disk].Path
		}
		if len(d.Layers) == 0 {
			fmt.Fprintf(tw, "%d\t%s\t(read-only, recorded as is)\t-\n", d.Disk, vol)
			continue
		}
		for i, l := range d.Layers {
			if i == 0 {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", d.Disk, vol, l.Volume, l.SHA256)
			} else {
				fmt.Fprintf(tw, "\t\t%s\t%s\n", l.Volume, l.SHA256)
			}
		}
	}
}
