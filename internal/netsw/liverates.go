package netsw

import (
	"context"

	"github.com/bulwark-project/bulwark/internal/vm"
)

// SetNICRates sets the rate limits of every NIC of a running VM from its
// definition (manager.LiveRates): a NIC without Rate becomes unlimited.
// NICs are set in order; an error names the NIC and leaves the earlier
// ones changed (the caller puts the old definition back).
func (s *Service) SetNICRates(_ context.Context, vmName string, nics []vm.NIC) error {
	for i, n := range nics {
		var r vm.NICRate
		if n.Rate != nil {
			r = *n.Rate
		}
		if err := s.SetRate(vmName, i, r); err != nil {
			return err
		}
	}
	return nil
}
