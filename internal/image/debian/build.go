package debian

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/bulwark-project/bulwark/internal/imagestore"
)

// Result is a finished or reused build.
type Result struct {
	Dir      string               `json:"dir"`
	Cached   bool                 `json:"cached"`
	Seconds  float64              `json:"seconds"`
	Note     string               `json:"note,omitempty"`
	Manifest *imagestore.Manifest `json:"manifest"`
}

// File names inside the image directory.
const (
	kernelName = "vmlinuz"
	initrdName = "initrd.img"
)

// DiskName is the disk template's file name for a format.
func DiskName(format string) string {
	if format == "raw" {
		return "disk.raw"
	}
	return "disk.qcow2"
}

// Build builds the image, or reuses the stored one when its cache key
// matches and its files verify. It needs root (mmdebstrap's root mode,
// chroot) and mmdebstrap, mke2fs, tar and (for qcow2) qemu-img.
func Build(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := imagestore.CheckName(o.Name); err != nil {
		return nil, err
	}
	store := imagestore.Store{Dir: o.StoreDir}
	tools, err := findTools(o)
	if err != nil {
		return nil, err
	}
	optionsKey := cacheKey(o, o.SourceDateEpoch, nil)
	st, ferr := fetchArchiveState(ctx, o)
	if ferr != nil && !o.Rebuild {
		// Offline: an image built from the same options is the best there
		// is; say so rather than fail.
		if r := reuse(store, o, func(p *imagestore.Provenance) bool { return p.Inputs["options_key"] == optionsKey }, o.Log); r != nil {
			r.Note = fmt.Sprintf("archive unreachable (%v); reusing the image built from the archive as of %s",
				ferr, time.Unix(r.Manifest.Provenance.SourceDateEpoch, 0).UTC().Format(time.RFC3339))
			r.Seconds = time.Since(start).Seconds()
			return r, nil
		}
		return nil, fmt.Errorf("debian image %s: %w (and no cached image was built from these options)", o.Name, ferr)
	}
	if ferr != nil {
		return nil, fmt.Errorf("debian image %s: %w", o.Name, ferr)
	}
	sde := o.SourceDateEpoch
	if sde == 0 {
		sde = st.Newest.Unix()
	}
	key := cacheKey(o, sde, st.Digests)
	match := func(p *imagestore.Provenance) bool { return p.CacheKey == key }
	if !o.Rebuild {
		if r := reuse(store, o, match, o.Log); r != nil {
			r.Seconds = time.Since(start).Seconds()
			return r, nil
		}
	}
	stg, err := store.Begin(o.Name)
	if err != nil {
		return nil, err
	}
	defer stg.Abort()
	// Another build of the same inputs may have finished while we waited
	// for the lock.
	if !o.Rebuild {
		if r := reuse(store, o, match, io.Discard); r != nil {
			r.Seconds = time.Since(start).Seconds()
			return r, nil
		}
	}
	b := &builder{o: o, dir: stg.Dir, root: filepath.Join(stg.Dir, "root"), sde: sde, tools: tools}
	m, err := b.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("debian image %s: %w", o.Name, err)
	}
	p := m.Provenance
	p.CacheKey = key
	p.Archive = st.Digests
	p.Inputs["options_key"] = optionsKey
	p.BuildSeconds = time.Since(start).Seconds()
	if err := stg.Install(m); err != nil {
		return nil, err
	}
	dir, _ := store.ImageDir(o.Name)
	return &Result{Dir: dir, Seconds: time.Since(start).Seconds(), Manifest: m}, nil
}

// reuse returns the stored image when its provenance satisfies match and
// every file verifies; a stored image that fails verification is reported
// and rebuilt.
func reuse(store imagestore.Store, o Options, match func(*imagestore.Provenance) bool, log io.Writer) *Result {
	m, err := store.Load(o.Name)
	if err != nil || m.Provenance == nil || !match(m.Provenance) {
		return nil
	}
	if _, err := store.Verify(o.Name); err != nil {
		fmt.Fprintf(log, "bulwark: cached image fails verification, rebuilding: %v\n", err)
		return nil
	}
	dir, _ := store.ImageDir(o.Name)
	return &Result{Dir: dir, Cached: true, Manifest: m}
}

// builder holds one build's state.
type builder struct {
	o     Options
	dir   string // staging directory (becomes the image directory)
	root  string // the root file system tree, removed once packed
	sde   int64
	tools []imagestore.Tool
}

func (b *builder) run(ctx context.Context) (*imagestore.Manifest, error) {
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"mmdebstrap", b.bootstrap},
		{"guest files", func(context.Context) error { return writeGuestFiles(b.root) }},
		{"kernel and initrd", func(context.Context) error { return b.takeBoot() }},
		{"clamp times", b.clampTimes},
	}
	for _, s := range steps {
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(b.o.Log, "bulwark: %s done in %.1f s\n", s.name, time.Since(t).Seconds())
	}
	installed, err := installedPackages(ctx, b.root)
	if err != nil {
		return nil, err
	}
	kver, version := kernelVersion(installed), b.version()
	t := time.Now()
	tree, err := b.treeDigest(ctx)
	if err != nil {
		return nil, fmt.Errorf("root tree digest: %w", err)
	}
	fmt.Fprintf(b.o.Log, "bulwark: root tree digest done in %.1f s\n", time.Since(t).Seconds())
	t = time.Now()
	if err := b.makeDisk(ctx); err != nil {
		return nil, fmt.Errorf("disk template: %w", err)
	}
	fmt.Fprintf(b.o.Log, "bulwark: disk template (%s) done in %.1f s\n", b.o.Format, time.Since(t).Seconds())
	if err := os.RemoveAll(b.root); err != nil {
		return nil, err
	}
	files, err := b.describeFiles()
	if err != nil {
		return nil, err
	}
	return &imagestore.Manifest{
		Name: b.o.Name, Version: version, Kind: "disk", Files: files, Cmdline: Cmdline,
		Provenance: &imagestore.Provenance{
			Builder: "bulwark image build --distro debian", BulwarkVersion: b.o.BulwarkVersion,
			Tools: b.tools, Distro: "debian", Suite: b.o.Suite, Architecture: "amd64", Variant: "minbase",
			Sources: b.o.sources(), Requested: b.o.packages(), Installed: installed,
			Inputs: map[string]string{"kernel_version": kver, "initramfs_modules": fmt.Sprint(InitramfsModules),
				"guest_files_sha256": guestDigest(), "disk_size": fmt.Sprint(b.o.DiskSize)},
			SourceDateEpoch: b.sde, BuiltAt: time.Now().UTC().Truncate(time.Second),
			RootTreeSHA256: tree, Reproducibility: reproducibilityNote,
		},
	}, nil
}

// reproducibilityNote says what a rebuild from the same archive state
// reproduces (docs/images.md has the details).
const reproducibilityNote = "same archive state (InRelease digests) and SOURCE_DATE_EPOCH give the same package versions, " +
	"the same kernel and initrd bytes and the same root tree digest (checked by two cold builds); " +
	"the ext4 template is not byte-identical (mke2fs -d copies inode change times and follows the host directory order)"

// version is the Debian release plus the date of the archive state, e.g.
// "12.11+20250517".
func (b *builder) version() string {
	rel := "unknown"
	if v, err := os.ReadFile(filepath.Join(b.root, "etc/debian_version")); err == nil {
		rel = string(trimSpace(v))
	}
	return rel + "+" + time.Unix(b.sde, 0).UTC().Format("20060102")
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func kernelVersion(installed []imagestore.Package) string {
	for _, p := range installed {
		if p.Name == "linux-image-cloud-amd64" {
			return p.Version
		}
	}
	return ""
}

// describeFiles digests the image's files in a fixed order.
func (b *builder) describeFiles() ([]imagestore.File, error) {
	var files []imagestore.File
	for _, f := range []imagestore.File{
		{Role: imagestore.RoleKernel, Name: kernelName},
		{Role: imagestore.RoleInitrd, Name: initrdName},
		{Role: imagestore.RoleDisk, Name: DiskName(b.o.Format), Format: b.o.Format, VirtualSize: b.o.DiskSize},
	} {
		sum, n, err := imagestore.HashFile(filepath.Join(b.dir, f.Name))
		if err != nil {
			return nil, err
		}
		f.SHA256, f.Size = sum, n
		files = append(files, f)
	}
	return files, nil
}

// fsUUID derives the file system UUID (and directory hash seed) from the
// build's inputs, so it is stable across rebuilds yet differs per image.
func fsUUID(o Options, sde int64) string {
	s := sha256.Sum256([]byte(fmt.Sprintf("%s %s %d", o.Name, cacheKey(o, sde, nil), sde)))
	s[6] = s[6]&0x0f | 0x40
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

var errNoKernel = errors.New("no kernel in the root's /boot")

// sortedPackages sorts by name for a stable manifest.
func sortedPackages(p []imagestore.Package) []imagestore.Package {
	sort.Slice(p, func(i, j int) bool { return p[i].Name < p[j].Name })
	return p
}
