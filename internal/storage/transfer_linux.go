package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// MaxImportBytes bounds one import (the largest volume we accept).
const MaxImportBytes = MaxVolumeSize

// ImportRequest describes a volume imported from a byte stream.
type ImportRequest struct {
	Pool   string
	Name   string
	Format string // raw, qcow2, or "" to tell by the qcow2 magic
	// SHA256 is required: the stream's digest as 64 lower-case hex
	// digits. A stream that does not match is refused and not kept.
	SHA256 string
	// Length, if known (> 0), is checked against the pool's free space
	// before anything is written.
	Length int64
}

// Import writes the stream r into a new volume. It is refused, and no file
// is left, when the digest does not match, the stream is larger than
// MaxImportBytes, the pool fills up or disappears, or a qcow2 image is
// malformed or not self-contained (backing file, external data file,
// unknown incompatible features, encryption).
func (s *Service) Import(ctx context.Context, req ImportRequest, r io.Reader) (*Volume, error) {
	if req.Pool == "" {
		req.Pool = DefaultPool
	}
	if err := ValidateName("name", req.Name); err != nil {
		return nil, err
	}
	if req.Format != "" {
		if err := ValidateFormat(req.Format); err != nil {
			return nil, err
		}
	}
	if err := ValidateDigest(req.SHA256); err != nil {
		return nil, fmt.Errorf("%w (an import needs the image's SHA-256)", err)
	}
	if req.Length > MaxImportBytes {
		return nil, fmt.Errorf("%w: volume %s/%s: import of %d bytes refused: larger than %d", ErrInvalid, req.Pool, req.Name, req.Length, int64(MaxImportBytes))
	}
	v := &Volume{Pool: req.Pool, Name: req.Name, Format: req.Format, SHA256: req.SHA256, Pristine: true, Created: time.Now().UTC()}
	p, err := s.begin(v.Ref(), req.Pool, "import")
	if err != nil {
		return nil, err
	}
	defer s.release(v.Ref())
	if req.Length > 0 {
		if _, free, err := p.space(); err == nil {
			if err := CheckSpace(p.Name, free, uint64(req.Length), reserveBytes); err != nil {
				return nil, fmt.Errorf("volume %s: import refused: %w", v.Ref(), err)
			}
		}
	}
	err = s.makeFile(ctx, p, v, func(tmp string) error {
		return s.receive(ctx, p, tmp, v, r)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// receive copies the stream into tmp, checks its digest, then its format.
// It sets v.Format (when detected) and v.Size.
func (s *Service) receive(ctx context.Context, p *Pool, tmp string, v *Volume, r io.Reader) error {
	f, err := p.createFile(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(&ctxReader{ctx, r}, MaxImportBytes+1))
	if err != nil {
		if errors.Is(err, errNoSpace) {
			return fmt.Errorf("%w: pool %s is full after %d bytes: %v", ErrNoSpace, p.Name, n, err)
		}
		return fmt.Errorf("import: after %d bytes: %w", n, err)
	}
	if n > MaxImportBytes {
		return fmt.Errorf("%w: import refused: larger than %d bytes", ErrInvalid, int64(MaxImportBytes))
	}
	if n == 0 {
		return fmt.Errorf("%w: import refused: the stream is empty", ErrInvalid)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != v.SHA256 {
		return fmt.Errorf("%w: import refused: SHA-256 of the %d bytes received is %s, expected %s; nothing was kept", ErrInvalid, n, got, v.SHA256)
	}
	if err := f.Sync(); err != nil {
		return spaceErr(p, err)
	}
	head, err := readHead(f)
	if err != nil {
		return err
	}
	isQcow := IsQcow2(head)
	switch {
	case v.Format == "" && isQcow, v.Format == FormatQcow2:
		v.Format = FormatQcow2
	case v.Format == "":
		v.Format = FormatRaw
	case v.Format == FormatRaw && isQcow:
		return fmt.Errorf("%w: import refused: the file is a qcow2 image but format raw was given (give format qcow2, or none)", ErrInvalid)
	}
	if v.Format == FormatRaw {
		if n%sizeAlign != 0 {
			return fmt.Errorf("%w: import refused: a raw image of %d bytes is not a whole number of 512-byte sectors", ErrInvalid, n)
		}
		v.Size = n
		return nil
	}
	hd, err := ParseQcow2Header(head)
	if err != nil {
		return fmt.Errorf("%w: import refused: %v", ErrInvalid, err)
	}
	if err := hd.ImportProblem(); err != nil {
		return fmt.Errorf("%w: import refused: the qcow2 image %v", ErrInvalid, err)
	}
	// Only now, with no external file named, may qemu-img open it.
	if err := s.check(ctx, p, tmp); err != nil {
		return fmt.Errorf("%w: import refused: damaged qcow2 image: %v", ErrInvalid, err)
	}
	in, err := s.info(ctx, p, tmp, FormatQcow2)
	if err != nil {
		return fmt.Errorf("%w: import refused: %v", ErrInvalid, err)
	}
	if in.BackingFilename != "" || uint64(in.VirtualSize) != hd.Size {
		return fmt.Errorf("%w: import refused: qemu-img and Bulwark's parser disagree (backing %q, size %d vs %d)", ErrInvalid, clip(in.BackingFilename), in.VirtualSize, hd.Size)
	}
	v.Size = in.VirtualSize
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Export opens a self-contained volume for reading its file as it is (raw
// bytes, or the qcow2 file). The caller closes the file. Clones are
// refused: their file alone is an overlay without its base.
func (s *Service) Export(ctx context.Context, pool, name string) (*os.File, *Volume, error) {
	s.mu.Lock()
	v, err := s.getLocked(pool, name)
	var p *Pool
	if err == nil {
		if v.Base != "" {
			err = fmt.Errorf("%w: volume %s: export refused: it is a clone of %s and its file alone is not a disk; export the base", ErrInvalid, v.Ref(), v.Base)
		} else if p = s.pools[pool]; p == nil {
			err = fmt.Errorf("%w: pool %s", ErrUnavailable, pool)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	f, err := p.open(v.FileName(), os.O_RDONLY)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: volume %s: %v", ErrUnavailable, v.Ref(), err)
	}
	if err := s.verifyFile(f, v); err != nil {
		f.Close()
		return nil, nil, err
	}
	vc := *v
	return f, &vc, nil
}
