package tpm

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// readAttempts bounds how often ReadPCRs retries when an extend by someone
// else lands between the TPM2_PCR_Read calls it needs (one call returns at
// most 8 digests).
const readAttempts = 3

// errClosed is returned by a chip's methods after Close.
var errClosed = errors.New("tpm: closed")

// chip is a TPM reached through go-tpm's tpm2 commands.
type chip struct {
	info Info

	mu sync.Mutex
	t  transport.TPMCloser // nil once closed
}

func newChip(t transport.TPMCloser, info Info) *chip {
	return &chip{info: info, t: t}
}

func (c *chip) Info() Info { return c.info }

func (c *chip) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t == nil {
		return nil
	}
	err := c.t.Close()
	c.t = nil
	return err
}

func (c *chip) ExtendPCR(index int, digest [32]byte) error {
	if err := checkIndex(index); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t == nil {
		return errClosed
	}
	cmd := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{
			Handle: tpm2.TPMHandle(index),
			Auth:   tpm2.PasswordAuth(nil),
		},
		Digests: tpm2.TPMLDigestValues{
			Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest[:]}},
		},
	}
	if _, err := cmd.Execute(c.t); err != nil {
		return fmt.Errorf("tpm: %s: extend PCR %d: %w", c.info.Addr, index, err)
	}
	return nil
}

func (c *chip) ReadPCRs(indices []int) (map[int][32]byte, error) {
	for _, i := range indices {
		if err := checkIndex(i); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t == nil {
		return nil, errClosed
	}
	for range readAttempts {
		vals, consistent, err := c.readLocked(indices)
		if err != nil {
			return nil, fmt.Errorf("tpm: %s: read PCRs %v: %w", c.info.Addr, indices, err)
		}
		if consistent {
			return vals, nil
		}
	}
	return nil, fmt.Errorf("tpm: %s: read PCRs %v: PCRs kept changing during %d attempts", c.info.Addr, indices, readAttempts)
}

// readLocked reads the SHA-256 values of indices with as many TPM2_PCR_Read
// calls as the TPM needs. consistent is false when the PCR update counter
// moved between calls, i.e. the values may mix two states.
func (c *chip) readLocked(indices []int) (vals map[int][32]byte, consistent bool, err error) {
	vals = make(map[int][32]byte, len(indices))
	want := slices.Clone(indices)
	slices.Sort(want)
	want = slices.Compact(want)
	var counter uint32
	for call := 0; len(want) > 0; call++ {
		sel := make([]uint, len(want))
		for i, w := range want {
			sel[i] = uint(w)
		}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{
			PCRSelections: []tpm2.TPMSPCRSelection{{
				Hash:      tpm2.TPMAlgSHA256,
				PCRSelect: tpm2.PCClientCompatible.PCRs(sel...),
			}},
		}}.Execute(c.t)
		if err != nil {
			return nil, false, err
		}
		if call > 0 && rsp.PCRUpdateCounter != counter {
			return nil, false, nil
		}
		counter = rsp.PCRUpdateCounter
		got, err := pcrValues(rsp)
		if err != nil {
			return nil, false, err
		}
		if len(got) == 0 {
			return nil, false, fmt.Errorf("TPM returned no SHA-256 value for PCRs %v (is the SHA-256 bank allocated?)", want)
		}
		for i, v := range got {
			vals[i] = v
		}
		want = slices.DeleteFunc(want, func(i int) bool { _, ok := got[i]; return ok })
	}
	return vals, true, nil
}

// pcrValues pairs a TPM2_PCR_Read response's digests with the PCRs its
// selection names: in selection order, ascending PCR index within each.
func pcrValues(rsp *tpm2.PCRReadResponse) (map[int][32]byte, error) {
	got := make(map[int][32]byte)
	digests := rsp.PCRValues.Digests
	for _, s := range rsp.PCRSelectionOut.PCRSelections {
		for byteIdx, b := range s.PCRSelect {
			for bit := range 8 {
				if b&(1<<bit) == 0 {
					continue
				}
				if len(digests) == 0 {
					return nil, errors.New("response selects more PCRs than it has digests")
				}
				d := digests[0].Buffer
				digests = digests[1:]
				if s.Hash != tpm2.TPMAlgSHA256 {
					continue
				}
				if len(d) != 32 {
					return nil, fmt.Errorf("PCR %d: SHA-256 digest of %d bytes", byteIdx*8+bit, len(d))
				}
				got[byteIdx*8+bit] = [32]byte(d)
			}
		}
	}
	if len(digests) != 0 {
		return nil, fmt.Errorf("response has %d digests beyond its selection", len(digests))
	}
	return got, nil
}
