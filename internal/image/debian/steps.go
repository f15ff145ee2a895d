package debian

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulwark-project/bulwark/internal/imagestore"
)

// findTools checks that every program a build runs is installed and
// records its version for the provenance.
func findTools(o Options) ([]imagestore.Tool, error) {
	type probe struct {
		name, pkg string
		args      []string
	}
	probes := []probe{
		{"mmdebstrap", "mmdebstrap", []string{"--version"}},
		{"mke2fs", "e2fsprogs", []string{"-V"}},
		{"tar", "tar", []string{"--version"}},
		{"dpkg-query", "dpkg", []string{"--version"}},
	}
	if o.Format == "qcow2" {
		probes = append(probes, probe{"qemu-img", "qemu-utils", []string{"--version"}})
	}
	var tools []imagestore.Tool
	for _, p := range probes {
		path, err := exec.LookPath(p.name)
		if err != nil {
			return nil, fmt.Errorf("debian image: %s not found: install the %s package (scripts/deps.sh does)", p.name, p.pkg)
		}
		out, _ := exec.Command(path, p.args...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		tools = append(tools, imagestore.Tool{Name: p.name, Version: line})
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "apt").Output(); err == nil {
		tools = append(tools, imagestore.Tool{Name: "apt", Version: string(out)})
	}
	return tools, nil
}

// run runs a tool with the build's environment, its output going to the
// build log; the last lines of output are kept for the error.
func (b *builder) runTool(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(b.sde, 10),
		"E2FSPROGS_FAKE_TIME="+strconv.FormatInt(b.sde, 10), "LC_ALL=C.UTF-8", "TMPDIR="+b.dir)
	var tail tailBuffer
	cmd.Stdout = io.MultiWriter(b.o.Log, &tail)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, tail.String())
	}
	return nil
}

// bootstrap runs mmdebstrap into b.root. The essential hook runs after the
// Essential set and before the rest (the kernel) is installed, so the
// initramfs configuration is in place when the kernel's postinst builds
// the initrd.
func (b *builder) bootstrap(ctx context.Context) error {
	hook := fmt.Sprintf(`mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d" && `+
		`printf 'MODULES=list\n' >"$1/etc/initramfs-tools/conf.d/bulwark.conf" && `+
		`printf '%s\n' >"$1/usr/share/initramfs-tools/modules.d/bulwark.conf"`,
		strings.Join(InitramfsModules, `\n`))
	args := []string{"--mode=root", "--variant=minbase", "--arch=amd64", "--format=directory",
		"--include=" + strings.Join(b.o.packages(), ","),
		// Documentation is not needed on a server guest; licences stay.
		"--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright", "--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--essential-hook=" + hook,
		b.o.Suite, b.root}
	args = append(args, b.o.sources()...)
	return b.runTool(ctx, "mmdebstrap", args...)
}

// writeGuestFiles adds Bulwark's guest units and the settings a VM from a
// shared template needs, and removes what must differ per VM.
func writeGuestFiles(root string) error {
	put := func(rel string, mode fs.FileMode, data []byte) error {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, mode)
	}
	guest := func(name string) []byte { b, _ := fs.ReadFile(guestFS, "guest/"+name); return b }
	errs := []error{
		put("usr/lib/bulwark/setup.sh", 0o755, guest("setup.sh")),
		put("usr/lib/bulwark/ready.sh", 0o755, guest("ready.sh")),
		put("etc/systemd/system/bulwark-setup.service", 0o644, guest("bulwark-setup.service")),
		put("etc/systemd/system/bulwark-ready.service", 0o644, guest("bulwark-ready.service")),
		put("etc/fstab", 0o644, []byte("/dev/vda / ext4 defaults,errors=remount-ro 0 1\n")),
		put("etc/hostname", 0o644, []byte("debian\n")),
		put("etc/hosts", 0o644, []byte("127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost ip6-loopback\n")),
		// The ACPI power button (graceful stop) reaches logind through
		// button and evdev.
		put("etc/modules-load.d/bulwark.conf", 0o644, []byte("button\nevdev\nvirtio_net\n")),
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	links := map[string]string{
		// Interface names stay eth0 (the name the setup script configures).
		"etc/systemd/network/99-default.link":                              "/dev/null",
		"etc/systemd/system/sysinit.target.wants/bulwark-setup.service":    "/etc/systemd/system/bulwark-setup.service",
		"etc/systemd/system/multi-user.target.wants/bulwark-ready.service": "/etc/systemd/system/bulwark-ready.service",
	}
	for rel, target := range links {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	// Host keys made at package installation would be shared by every VM
	// of the template; setup.sh makes fresh ones on first boot.
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	if err := aptPartialOwner(root); err != nil {
		return err
	}
	// An empty machine-id makes systemd generate one on first boot.
	return os.WriteFile(filepath.Join(root, "etc/machine-id"), nil, 0o444)
}

// aptPartialOwner gives apt's partial-download directories to the guest's
// _apt user, as on an installed system. apt leaves them root's when it
// could not drop privileges during the build (a store below a root-only
// directory), so without this the tree would depend on the host's
// directory modes.
func aptPartialOwner(root string) error {
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		return err
	}
	uid := -1
	for _, line := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) > 3 && f[0] == "_apt" {
			uid, _ = strconv.Atoi(f[2])
		}
	}
	if uid <= 0 {
		return nil // no apt sandbox user: nothing to normalise
	}
	for _, d := range []string{"var/cache/apt/archives/partial", "var/lib/apt/lists/partial"} {
		if err := os.Lchown(filepath.Join(root, d), uid, 0); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// takeBoot copies the kernel and initrd out of the root's /boot.
func (b *builder) takeBoot() error {
	kernels, _ := filepath.Glob(filepath.Join(b.root, "boot/vmlinuz-*"))
	if len(kernels) != 1 {
		return fmt.Errorf("%w (found %d vmlinuz-*)", errNoKernel, len(kernels))
	}
	ver := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	initrd := filepath.Join(b.root, "boot/initrd.img-"+ver)
	for src, dst := range map[string]string{kernels[0]: kernelName, initrd: initrdName} {
		if err := copyFile(src, filepath.Join(b.dir, dst), imagestore.FileMode); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// clampTimes sets every modification time newer than SOURCE_DATE_EPOCH to
// it (as mkinitramfs does), so files written during the build carry the
// same time in every rebuild.
func (b *builder) clampTimes(ctx context.Context) error {
	stamp := "@" + strconv.FormatInt(b.sde, 10)
	return b.runTool(ctx, "sh", "-c", `find "$1" -newermt "$2" -print0 | xargs -0r touch --no-dereference --date="$2"`,
		"clamp", b.root, stamp)
}

// installedPackages lists the root's packages with exact versions.
func installedPackages(ctx context.Context, root string) ([]imagestore.Package, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"),
		"-W", "-f=${db:Status-Abbrev}\t${Package}\t${Version}\n").Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-query: %w", err)
	}
	var pkgs []imagestore.Package
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) == 3 && strings.HasPrefix(f[0], "ii") {
			pkgs = append(pkgs, imagestore.Package{Name: f[1], Version: f[2]})
		}
	}
	return sortedPackages(pkgs), nil
}

// treeDigest hashes a canonical tar of the root: names sorted, times
// clamped, numeric owners, no access or change times.
func (b *builder) treeDigest(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "tar", "--sort=name", "--numeric-owner", "--format=pax",
		"--mtime=@"+strconv.FormatInt(b.sde, 10), "--clamp-mtime",
		"--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
		"-C", b.root, "-cf", "-", ".")
	var errb tailBuffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	sum, herr := imagestore.HashReader(out)
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("tar: %w: %s", err, errb.String())
	}
	return sum, herr
}

// makeDisk packs the root into an ext4 file system with mke2fs -d (no
// loop device, no mount) and converts it to qcow2 when asked.
func (b *builder) makeDisk(ctx context.Context) error {
	uuid := fsUUID(b.o, b.sde)
	raw := filepath.Join(b.dir, DiskName("raw"))
	err := b.runTool(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-L", "bulwark-root", "-U", uuid,
		"-E", "hash_seed="+uuid+",root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0",
		"-m", "1", "-d", b.root, raw, strconv.FormatInt(b.o.DiskSize/1024, 10)+"k")
	if err != nil {
		return err
	}
	if b.o.Format == "raw" {
		return os.Chmod(raw, imagestore.DiskMode)
	}
	q := filepath.Join(b.dir, DiskName("qcow2"))
	if err := b.runTool(ctx, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", raw, q); err != nil {
		return err
	}
	if err := os.Remove(raw); err != nil {
		return err
	}
	return os.Chmod(q, imagestore.DiskMode)
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
