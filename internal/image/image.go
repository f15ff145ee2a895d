// Package image builds Bulwark's reproducible guest initramfs from the host's
// stock Debian cloud kernel, its modules and a static busybox, and stages the
// kernel next to it.
//
// The output depends only on the input files: archive entries are sorted,
// timestamps, owners and inode numbers are fixed, and the gzip header carries
// no name or time, so two builds from the same inputs are byte-identical and
// can be compared by hash.
package image

import (
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ReadyMarker starts the single console line the guest's init prints once
// modules are loaded and the network is configured, followed by
// " hostname=<name>". Hosts wait for it before talking to the guest.
const ReadyMarker = "bulwark-guest-ready"

//go:embed init.sh
var initScript []byte

// DefaultModules are the drivers a Bulwark guest needs on both the microvm
// (virtio-mmio) and q35 (virtio-pci) machine types. Loading the transport
// that a machine lacks is harmless, so both are always included. button and
// evdev carry the ACPI power button to acpid for graceful shutdown.
var DefaultModules = []string{"virtio_mmio", "virtio_pci", "virtio_net", "virtio_blk", "virtio_console", "virtio_rng", "button", "evdev"}

// Options selects the inputs and output directory of Build. Zero values pick
// the Debian host defaults documented on each field.
type Options struct {
	KernelVersion string   // e.g. "6.1.0-56-cloud-amd64"; empty = newest dir under ModulesRoot that has a matching /boot/vmlinuz-<ver>
	KernelPath    string   // default "/boot/vmlinuz-<KernelVersion>"
	ModulesRoot   string   // default "/lib/modules"
	BusyboxPath   string   // default "/bin/busybox"; must be statically linked
	OutDir        string   // required; created 0755 if missing
	Modules       []string // top-level modules wanted; default DefaultModules
}

// Result describes a finished build; it is also written to
// OutDir/manifest.json.
type Result struct {
	KernelVersion string   `json:"kernel_version"`
	Kernel        string   `json:"kernel"`
	KernelSHA256  string   `json:"kernel_sha256"`
	Initrd        string   `json:"initrd"`
	InitrdSHA256  string   `json:"initrd_sha256"`
	Modules       []string `json:"modules"`
}

// bootDir is where kernels are looked for when KernelVersion or KernelPath
// is empty. It is a variable only so tests can use a fake host layout.
var bootDir = "/boot"

// Size limits for files read fully into memory. Real inputs are a few MiB;
// the limits keep a wrong path (a disk image, /dev/zero) from exhausting
// memory.
const (
	maxBusyboxSize = 64 << 20
	maxModuleSize  = 64 << 20
)

// moduleFile is a resolved module together with its (decompressed) contents.
type moduleFile struct {
	module
	data []byte
}

// Build writes OutDir/vmlinuz, OutDir/initrd.img and OutDir/manifest.json.
// Each file is replaced atomically, so a concurrent reader sees either the
// old or the new version, never a partial file.
func Build(opts Options) (*Result, error) {
	o, err := resolveOptions(opts)
	if err != nil {
		return nil, err
	}
	busybox, err := readStaticBusybox(o.BusyboxPath)
	if err != nil {
		return nil, err
	}
	modDir := filepath.Join(o.ModulesRoot, o.KernelVersion)
	mods, err := loadModules(modDir, o.Modules, len(opts.Modules) > 0)
	if err != nil {
		return nil, err
	}
	arc, err := newInitramfs(busybox, mods)
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(o.OutDir)
	if err != nil {
		return nil, fmt.Errorf("image: output directory: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	res := &Result{
		KernelVersion: o.KernelVersion,
		Kernel:        filepath.Join(out, "vmlinuz"),
		Initrd:        filepath.Join(out, "initrd.img"),
		Modules:       make([]string, 0, len(mods)),
	}
	for _, m := range mods {
		res.Modules = append(res.Modules, m.Name)
	}
	if res.KernelSHA256, err = copyKernel(o.KernelPath, out); err != nil {
		return nil, err
	}
	if res.InitrdSHA256, err = writeInitrd(arc, out); err != nil {
		return nil, err
	}
	manifest, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("image: manifest: %w", err)
	}
	err = writeAtomic(out, "manifest.json", func(w io.Writer) error {
		_, err := w.Write(append(manifest, '\n'))
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// resolveOptions fills in defaults and validates what would otherwise turn
// into confusing file-not-found errors later.
func resolveOptions(o Options) (Options, error) {
	if o.OutDir == "" {
		return o, errors.New("image: OutDir is required")
	}
	if o.ModulesRoot == "" {
		o.ModulesRoot = "/lib/modules"
	}
	if o.BusyboxPath == "" {
		o.BusyboxPath = "/bin/busybox"
	}
	if len(o.Modules) == 0 {
		o.Modules = DefaultModules
	}
	if o.KernelVersion == "" {
		v, err := newestKernel(o.ModulesRoot, bootDir)
		if err != nil {
			return o, err
		}
		o.KernelVersion = v
	}
	// The version becomes a path component under ModulesRoot and /boot.
	v := o.KernelVersion
	if strings.ContainsAny(v, "/\\\x00") || v == "." || v == ".." {
		return o, fmt.Errorf("image: invalid kernel version %q", v)
	}
	if o.KernelPath == "" {
		o.KernelPath = filepath.Join(bootDir, "vmlinuz-"+v)
	}
	return o, nil
}

// newestKernel picks the highest version under modulesRoot that has both a
// modules.dep and a kernel in boot, so a leftover modules directory from a
// removed kernel is never chosen.
func newestKernel(modulesRoot, boot string) (string, error) {
	ents, err := os.ReadDir(modulesRoot)
	if err != nil {
		return "", fmt.Errorf("image: finding kernel version: %w", err)
	}
	best := ""
	for _, e := range ents {
		v := e.Name()
		if !isFile(filepath.Join(modulesRoot, v, "modules.dep")) || !isFile(filepath.Join(boot, "vmlinuz-"+v)) {
			continue
		}
		if best == "" || compareVersions(v, best) > 0 {
			best = v
		}
	}
	if best == "" {
		return "", fmt.Errorf("image: no kernel found: no directory in %s has modules.dep and a matching %s/vmlinuz-<version>", modulesRoot, boot)
	}
	return best, nil
}

// loadModules resolves wanted against modDir/modules.dep and reads every
// module of the closure, in load order.
func loadModules(modDir string, wanted []string, strict bool) ([]moduleFile, error) {
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	deps, err := ParseModulesDep(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("image: %s: %w", modDir, err)
	}
	mods, err := resolveModules(deps, wanted, strict)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	out := make([]moduleFile, 0, len(mods))
	for _, m := range mods {
		data, err := readModule(filepath.Join(modDir, filepath.FromSlash(m.Path)))
		if err != nil {
			return nil, fmt.Errorf("image: module %s: %w", m.Name, err)
		}
		out = append(out, moduleFile{module: m, data: data})
	}
	return out, nil
}

// readModule returns a module ready for insmod. Busybox's insmod passes the
// bytes straight to init_module(2), so the archive must hold them
// uncompressed; only gzip has a decompressor in the standard library.
func readModule(p string) ([]byte, error) {
	switch {
	case strings.HasSuffix(p, ".ko"):
		return readBounded(p, maxModuleSize)
	case strings.HasSuffix(p, ".ko.gz"):
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return readAllBounded(zr, p, maxModuleSize)
	default:
		return nil, fmt.Errorf("%s: compressed modules not supported (only .ko and .ko.gz); rebuild the kernel with CONFIG_MODULE_COMPRESS_NONE or unpack the modules", p)
	}
}

// newInitramfs lays out the guest root filesystem. Applet symlinks are
// deliberately absent: init creates them with busybox --install at boot,
// which keeps the archive small and independent of the applet list.
func newInitramfs(busybox []byte, mods []moduleFile) (*cpioArchive, error) {
	a := newCPIOArchive()
	var errs []error
	for _, d := range []string{"bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "lib/modules", "usr/bin", "usr/sbin", "run"} {
		errs = append(errs, a.addDir(d, 0o755))
	}
	errs = append(errs,
		a.addDir("root", 0o700),
		// The kernel opens /dev/console for init's stdio before init can
		// mount devtmpfs; shipping the node keeps the console working even
		// on kernels without a built-in default initramfs that provides it.
		a.addCharDev("dev/console", 0o600, 5, 1),
		a.addFile("init", 0o755, initScript),
		a.addFile("bin/busybox", 0o755, busybox),
		a.addFile("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")),
		a.addFile("etc/group", 0o644, []byte("root:x:0:\n")),
	)
	var list strings.Builder
	for _, m := range mods {
		errs = append(errs, a.addFile("lib/modules/"+m.Name+".ko", 0o644, m.data))
		list.WriteString(m.Name + "\n")
	}
	errs = append(errs, a.addFile("etc/bulwark-modules", 0o644, []byte(list.String())))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return a, nil
}

// writeInitrd writes the gzip-compressed archive and returns its SHA-256.
// The gzip header is pinned (no name, zero mtime, fixed OS byte) because
// Go's defaults are not a documented guarantee.
func writeInitrd(a *cpioArchive, dir string) (string, error) {
	h := sha256.New()
	err := writeAtomic(dir, "initrd.img", func(w io.Writer) error {
		gz, err := gzip.NewWriterLevel(io.MultiWriter(w, h), gzip.BestCompression)
		if err != nil {
			return err
		}
		gz.Header = gzip.Header{OS: 255}
		if err := a.writeTo(gz); err != nil {
			return err
		}
		return gz.Close()
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyKernel streams the kernel into dir/vmlinuz and returns its SHA-256.
func copyKernel(src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("image: kernel: %w", err)
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("image: kernel %s is not a regular file", src)
	}
	h := sha256.New()
	err = writeAtomic(dir, "vmlinuz", func(w io.Writer) error {
		_, err := io.Copy(io.MultiWriter(w, h), in)
		return err
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
