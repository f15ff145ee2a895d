package tpm

import "github.com/google/go-tpm/tpm2"

// HandlesOf lists a chip's handles of type ht (0x80 transient, 0x81
// persistent, 0x02 and 0x03 sessions), for tests of resource hygiene.
func HandlesOf(t TPM, ht uint8) ([]uint32, error) {
	c := t.(*chip)
	c.mu.Lock()
	defer c.mu.Unlock()
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(ht) << 24, PropertyCount: 64}.Execute(c.t)
	if err != nil {
		return nil, err
	}
	hs, err := rsp.CapabilityData.Data.Handles()
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, h := range hs.Handle {
		if uint8(h>>24) == ht {
			out = append(out, uint32(h))
		}
	}
	return out, nil
}
