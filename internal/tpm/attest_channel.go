package tpm

import (
	"errors"
	"fmt"
)

// errUnlockedCommand reports a command sent to a lockedChannel outside the
// chip's critical section: a bug in this package, refused rather than
// interleaved with another goroutine's command.
var errUnlockedCommand = errors.New("tpm: attestation command sent without holding the chip lock")

// lockedChannel is the TPM 2.0 command channel go-attestation speaks
// through (attest.CommandChannelTPM20). go-attestation's tpmutil writes a
// whole command and then reads the whole response; Write sends the command
// through the chip's transport and keeps the response for the next Read.
//
// It does not take the chip's mutex itself: one go-attestation call sends
// several commands (start a session, use it, flush it), and the Attester
// holds c.mu around the whole call so that nothing else — an extend, a PCR
// read, another attestation call — lands between them. held says that the
// lock is held; it is set and cleared only by Attester.locked, under c.mu.
type lockedChannel struct {
	c    *chip
	held bool   // guarded by c.mu
	rsp  []byte // the response to the last command, until Read takes it
}

func (ch *lockedChannel) Write(cmd []byte) (int, error) {
	if !ch.held {
		return 0, errUnlockedCommand
	}
	if ch.c.t == nil {
		return 0, errClosed
	}
	if ch.rsp != nil {
		return 0, errors.New("tpm: attestation channel: command sent before the previous response was read")
	}
	rsp, err := ch.c.t.Send(cmd)
	if err != nil {
		return 0, err // the Attester names the TPM
	}
	ch.rsp = rsp
	return len(cmd), nil
}

// Read hands over the whole response at once, as tpmutil expects (it reads
// once into a 4096-byte buffer). A buffer too small for it is an error
// rather than a silently split response.
func (ch *lockedChannel) Read(p []byte) (int, error) {
	if !ch.held {
		return 0, errUnlockedCommand
	}
	if ch.rsp == nil {
		return 0, errors.New("tpm: attestation channel: read without a command")
	}
	if len(p) < len(ch.rsp) {
		n := len(ch.rsp)
		ch.rsp = nil
		return 0, fmt.Errorf("tpm: attestation channel: response of %d bytes does not fit a %d-byte read", n, len(p))
	}
	n := copy(p, ch.rsp)
	ch.rsp = nil
	return n, nil
}

// Close does nothing: the chip owns the transport, and Attester.Close
// closes only what the Attester loaded.
func (ch *lockedChannel) Close() error { return nil }

// MeasurementLog is part of go-attestation's channel interface; Bulwark's
// event log lives in internal/measure, never in the firmware's log file.
func (ch *lockedChannel) MeasurementLog() ([]byte, error) {
	return nil, errors.New("tpm: the attestation channel has no measurement log (see internal/measure)")
}
