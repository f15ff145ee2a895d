package profile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

// maxProfileFile bounds a cached profile read back (a real one is ~2 MiB).
const maxProfileFile = 64 << 20

// LoadOrDerive returns the profile of the kernel in bzImagePath, from
// cacheDir when it has been derived before.
//
// Profiles are stored as cacheDir/<build id>.json. Finding the build id
// needs the decompressed kernel, so a second small file,
// cacheDir/image-<sha256 of the bzImage>, remembers which build id an image
// has; a repeated call then costs one hash of the file and one JSON read
// instead of decompression, kallsyms decoding and BTF resolution. A cache
// file that is unreadable, corrupt or from another format version is
// ignored and rewritten.
func LoadOrDerive(cacheDir, bzImagePath string) (*Profile, error) {
	return LoadOrDeriveWith(cacheDir, bzImagePath, nil)
}

// LoadOrDeriveWith is LoadOrDerive with the decompression supplied by the
// caller, who may share one decompression of the image among several
// derivations: extract is called only when the cache misses, and must
// return the decompressed kernel of the file at bzImagePath. A nil extract
// decompresses the file here.
func LoadOrDeriveWith(cacheDir, bzImagePath string, extract func() ([]byte, error)) (*Profile, error) {
	img, err := readImage(bzImagePath)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(img)
	alias := filepath.Join(cacheDir, "image-"+hex.EncodeToString(sum[:]))
	if id, err := os.ReadFile(alias); err == nil {
		if p, err := Load(cacheDir, strings.TrimSpace(string(id))); err == nil {
			return p, nil
		}
	}

	if extract == nil {
		extract = func() ([]byte, error) { return kimage.Extract(bytes.NewReader(img), int64(len(img))) }
	}
	vmlinux, err := extract()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bzImagePath, err)
	}
	id, err := kimage.BuildID(vmlinux)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bzImagePath, err)
	}
	p, err := Load(cacheDir, id)
	if err != nil {
		if p, err = FromVmlinux(vmlinux); err != nil {
			return nil, fmt.Errorf("%s: %w", bzImagePath, err)
		}
		if err := Save(cacheDir, p); err != nil {
			return nil, err
		}
	}
	if err := writeAtomic(alias, []byte(p.BuildID+"\n")); err != nil {
		return nil, err
	}
	return p, nil
}

// Path returns where the profile of build id is cached.
func Path(cacheDir, buildID string) (string, error) {
	if err := checkBuildID(buildID); err != nil {
		return "", err
	}
	return filepath.Join(cacheDir, buildID+".json"), nil
}

// Load reads and validates the cached profile of build id.
func Load(cacheDir, buildID string) (*Profile, error) {
	path, err := Path(cacheDir, buildID)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProfileFile+1))
	if err != nil {
		return nil, fmt.Errorf("profile: reading %s: %w", path, err)
	}
	if len(data) > maxProfileFile {
		return nil, fmt.Errorf("profile: %s is larger than %d bytes", path, maxProfileFile)
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("profile: %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if p.BuildID != buildID {
		return nil, fmt.Errorf("profile: %s holds build id %s", path, p.BuildID)
	}
	return &p, nil
}

// Save writes p to cacheDir/<build id>.json, mode 0600, atomically: readers
// see the old file or the complete new one, never a partial write.
func Save(cacheDir string, p *Profile) error {
	path, err := Path(cacheDir, p.BuildID)
	if err != nil {
		return err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("profile: encoding: %w", err)
	}
	return writeAtomic(path, data)
}

// writeAtomic writes a 0600 file through a temporary file in the same
// directory, synced before the rename. The directory is created 0700: a
// profile tells an attacker where everything in the guest kernel lives.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("profile: cache directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if tmp != "" {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("profile: writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("profile: syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	tmp = ""
	return nil
}

// IsNotCached reports whether err from Load means there is no cache entry.
func IsNotCached(err error) bool { return errors.Is(err, fs.ErrNotExist) }
