package measure

import (
	"fmt"

	"github.com/bulwark-project/bulwark/internal/tpm"
)

// Snapshot runs fn with the measurement lock held, giving it the event log
// as it is on disk. No measurement happens until fn returns, so a quote fn
// takes of the PCRs matches the log it was given: a verifier can replay it.
func (m *Measurer) Snapshot(fn func(log []byte) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	raw, err := readBounded(m.path)
	if err != nil {
		return fmt.Errorf("measure: read event log: %w", err)
	}
	return fn(raw)
}

// TPM is the TPM the measurements go to (tpm.None in the no-TPM mode).
func (m *Measurer) TPM() tpm.TPM { return m.tpm }
