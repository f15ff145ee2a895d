package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Layer is one opened file of a volume's chain.
type Layer struct {
	File   *os.File // owned by the caller: close it (CloseLayers)
	Format string   // raw or qcow2
	Volume string   // "POOL/NAME", for messages
	// ReadOnly is true for every layer below the top, and for the top
	// when the disk is attached read-only; File is opened accordingly.
	ReadOnly bool
	// MaxSize is how large the file may grow while a VM writes to it.
	MaxSize int64
	// SHA256 is, for a read-only layer, the SHA-256 of the file's bytes
	// the records vouch for (Volume.ContentSHA256: imported with a checked
	// digest, never opened for writing since); "" when there is none, and
	// always for a writable layer. Measured launch records it (PCR 12).
	SHA256 string
}

// maxFileSize bounds a volume file's growth: the virtual size for raw;
// for qcow2 also its metadata (an L2 entry of 8 bytes and a refcount of 2
// per 64 KiB cluster, well under 1/128) and a margin for the header and
// tables.
func maxFileSize(v *Volume) int64 {
	if v.Format == FormatRaw {
		return v.Size
	}
	return v.Size + v.Size/128 + 64<<20
}

// CloseLayers closes every layer's file.
func CloseLayers(ls []Layer) {
	for _, l := range ls {
		if l.File != nil {
			l.File.Close()
		}
	}
}

// chainLocked returns ref's chain, top first, from the records: each
// volume's Base, never a header. It is bounded and refuses loops.
func (s *Service) chainLocked(ref string) ([]*Volume, error) {
	pool, name, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	v, err := s.getLocked(pool, name)
	if err != nil {
		return nil, err
	}
	chain := []*Volume{v}
	for v.Base != "" {
		if len(chain) >= maxChain {
			return nil, fmt.Errorf("%w: volume %s: backing chain longer than %d", ErrInvalid, ref, maxChain)
		}
		b := s.vols[v.Pool+"/"+v.Base]
		if b == nil {
			return nil, fmt.Errorf("%w: volume %s: its base %s/%s is not on record", ErrNotFound, v.Ref(), v.Pool, v.Base)
		}
		for _, c := range chain {
			if c == b {
				return nil, fmt.Errorf("%w: volume %s: backing chain loops at %s", ErrInvalid, ref, b.Ref())
			}
		}
		chain = append(chain, b)
		v = b
	}
	return chain, nil
}

// CheckAttach says whether ref may be attached to a VM (at definition
// time): it exists, and a base with clones is attached read-only.
func (s *Service) CheckAttach(ref string, readOnly bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	chain, err := s.chainLocked(ref)
	if err != nil {
		return err
	}
	if c := s.clonesLocked(chain[0]); len(c) > 0 && !readOnly {
		return fmt.Errorf("%w: volume %s: read-write attach refused: it is the base of clone(s) %v; attach it read_only or attach a clone", ErrConflict, ref, c)
	}
	return nil
}

// OpenChain opens ref's whole chain for a VM and returns it base first,
// top last: bases O_RDONLY, the top O_RDWR unless readOnly. Every qcow2
// layer's header is read from the opened descriptor and must agree with
// the records (backing file = the recorded base's file, no data file, no
// unknown features), so a header rewritten behind Bulwark's back (by a
// compromised VMM, or planted in the pool) is refused before QEMU sees it.
// The caller closes the files.
func (s *Service) OpenChain(ctx context.Context, ref string, readOnly bool) ([]Layer, error) {
	s.mu.Lock()
	chain, err := s.chainLocked(ref)
	var p *Pool
	if err == nil {
		if o := s.busy[chain[0].Ref()]; o != "" {
			err = fmt.Errorf("%w: volume %s: a %s is in progress", ErrConflict, ref, o)
		} else if c := s.clonesLocked(chain[0]); len(c) > 0 && !readOnly {
			err = fmt.Errorf("%w: volume %s: read-write open refused: it is the base of clone(s) %v", ErrConflict, ref, c)
		} else if p = s.pools[chain[0].Pool]; p == nil {
			err = fmt.Errorf("%w: volume %s: pool %s is not configured", ErrUnavailable, ref, chain[0].Pool)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	if !readOnly {
		// Recorded before the file can change: a digest is never claimed
		// for a file that was once writable.
		if chain[0], err = s.markWritten(ctx, chain[0]); err != nil {
			return nil, err
		}
	}
	layers := make([]Layer, len(chain))
	fail := func(err error) ([]Layer, error) {
		CloseLayers(layers)
		return nil, err
	}
	for i, v := range chain {
		ro := readOnly || i > 0
		flag := os.O_RDWR
		if ro {
			flag = os.O_RDONLY
		}
		f, err := p.open(v.FileName(), flag)
		if err != nil {
			return fail(fmt.Errorf("%w: volume %s: %v", ErrUnavailable, v.Ref(), err))
		}
		l := Layer{File: f, Format: v.Format, Volume: v.Ref(), ReadOnly: ro, MaxSize: maxFileSize(v)}
		if ro {
			l.SHA256 = v.ContentSHA256()
		}
		layers[len(chain)-1-i] = l
		if err := s.verifyFile(f, v); err != nil {
			return fail(err)
		}
	}
	return layers, nil
}

// markWritten records that v's file is about to be opened for writing
// (clears Volume.Pristine) and returns the record as it now is.
func (s *Service) markWritten(ctx context.Context, v *Volume) (*Volume, error) {
	if !v.Pristine {
		return v, nil
	}
	nv := *v
	nv.Pristine = false
	if err := s.update(ctx, &nv); err != nil {
		return nil, fmt.Errorf("volume %s: recording that it is opened for writing: %w", v.Ref(), err)
	}
	return &nv, nil
}

// verifyFile checks an opened volume file against its record.
func (s *Service) verifyFile(f *os.File, v *Volume) error {
	s.mu.Lock()
	var base *Volume
	if v.Base != "" {
		base = s.vols[v.Pool+"/"+v.Base]
	}
	s.mu.Unlock()
	head, err := readHead(f)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.Ref(), err)
	}
	if v.Format != FormatQcow2 {
		// QEMU's raw driver interprets nothing in the file.
		return nil
	}
	h, err := ParseQcow2Header(head)
	if err != nil {
		return fmt.Errorf("%w: volume %s: refused: %v", ErrInvalid, v.Ref(), err)
	}
	wantBacking, wantFmt := "", ""
	if base != nil {
		wantBacking, wantFmt = base.FileName(), base.Format
	} else if v.Base != "" {
		return fmt.Errorf("%w: volume %s: its base %s is not on record", ErrNotFound, v.Ref(), v.Base)
	}
	if err := h.OpenProblem(wantBacking, wantFmt); err != nil {
		return fmt.Errorf("%w: volume %s: refused: %v", ErrInvalid, v.Ref(), err)
	}
	return nil
}

// checkHeader verifies a volume's file before qemu-img works on it.
func (s *Service) checkHeader(p *Pool, v *Volume) error {
	f, err := p.open(v.FileName(), os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("%w: volume %s: %v", ErrUnavailable, v.Ref(), err)
	}
	defer f.Close()
	return s.verifyFile(f, v)
}

// readHead reads the first HeaderReadLimit bytes (or the whole file if
// shorter) with pread, leaving the file offset alone.
func readHead(f *os.File) ([]byte, error) {
	buf := make([]byte, HeaderReadLimit)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}
