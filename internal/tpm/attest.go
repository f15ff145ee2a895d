package tpm

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	goattest "github.com/google/go-attestation/attest"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/bulwark-project/bulwark/internal/attest"
)

// Handles the attestation keys live at. go-attestation creates both on first
// use when they are absent and never deletes them; they are the TCG's
// well-known persistent handles (TCG "Registry of Reserved TPM 2.0 Handles"
// 2.3.1), shared with tpm2-tools and other attestation agents, which create
// the same keys from the same default templates.
const (
	// EKHandle is the RSA-2048 endorsement key (default TCG template).
	EKHandle = 0x81010001
	// SRKHandle is the RSA-2048 storage root key the AK is created under.
	SRKHandle = 0x81000001
)

// quoteAttempts bounds how often Quote retries when the PCRs it reads after
// the quote do not match the quote's digest: someone outside this process
// (systemd on a host TPM) extended in between.
const quoteAttempts = 3

// maxExtraData is the most qualifying data a quote carries (TPM2B_DATA holds
// a digest; attest.QuoteData is 32 bytes).
const maxExtraData = 64

// AKStatus says where the Attester's AK came from. Anything but AKLoaded
// means the verifier does not know this AK yet: the host must register
// again (Keys, then a credential challenge) before its quotes verify.
type AKStatus int

const (
	// AKLoaded: the AK in the state file loaded; the verifier knows it.
	AKLoaded AKStatus = iota
	// AKCreated: there was no state file; a new AK was created.
	AKCreated
	// AKReplaced: the state file's AK no longer loads (the TPM was
	// cleared, or this is another TPM) or the file is damaged; a new AK
	// replaced it.
	AKReplaced
)

// MustRegister reports whether the verifier has to see the AK anew.
func (s AKStatus) MustRegister() bool { return s != AKLoaded }

func (s AKStatus) String() string {
	switch s {
	case AKLoaded:
		return "loaded"
	case AKCreated:
		return "created"
	case AKReplaced:
		return "replaced"
	}
	return fmt.Sprintf("AKStatus(%d)", int(s))
}

// Attester is the TPM side of remote attestation: the host's EK and AK,
// credential activation, and quotes. Its methods are safe for concurrent
// use; each holds the chip's lock for the whole TPM exchange, so they are
// serialised with each other and with ExtendPCR and ReadPCRs.
//
// TPM objects: the EK and SRK persist at EKHandle and SRKHandle; the AK is
// loaded as one transient object for the Attester's life and flushed by
// Close; ActivateCredential's policy session is flushed before Activate
// returns. On a swtpm, which has no resource manager, NewAttester first
// flushes transient objects and sessions a previous, crashed daemon left
// (swtpm serves one connection at a time, so they cannot be anyone else's).
type Attester struct {
	c    *chip
	ch   *lockedChannel
	gtpm *goattest.TPM
	keys attest.Keys
	ek   goattest.EK

	ak *goattest.AK // guarded by c.mu; nil once closed
}

// NewAttester readies t for attestation. akFile is where the AK's
// TPM-wrapped blob is kept (the daemon's state directory; written 0600 and
// atomically): its AK is loaded, or a new one created and saved when there
// is none or it no longer loads. The status says which; log (may be nil)
// records a replacement. The Attester does not own t: Close leaves it open.
//
// The no-TPM mode has no keys: the error wraps ErrNoTPM.
func NewAttester(t TPM, akFile string, log *slog.Logger) (*Attester, AKStatus, error) {
	c, ok := t.(*chip)
	if !ok || c == nil {
		return nil, 0, fmt.Errorf("tpm: attestation needs a TPM (%w): %s", ErrNoTPM, InfoOf(t))
	}
	if akFile == "" {
		return nil, 0, errors.New("tpm: attestation: no AK state file given")
	}
	a := &Attester{c: c, ch: &lockedChannel{c: c}}
	gtpm, err := goattest.OpenTPM(&goattest.OpenConfig{CommandChannel: a.ch})
	if err != nil {
		return nil, 0, fmt.Errorf("tpm: %s: attestation: %w", c.info.Addr, err)
	}
	a.gtpm = gtpm
	var status AKStatus
	err = a.locked(func() error {
		if c.info.Kind == KindSwtpm {
			if err := flushLeftovers(c.t); err != nil {
				return fmt.Errorf("flush leftover handles: %w", err)
			}
		}
		if err := a.loadEKLocked(); err != nil {
			return err
		}
		var err error
		status, err = a.loadOrCreateAKLocked(akFile, log)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("tpm: %s: attestation: %w", c.info.Addr, err)
	}
	return a, status, nil
}

// locked runs fn holding the chip's lock, with the command channel open to
// go-attestation for exactly that long.
func (a *Attester) locked(fn func() error) error {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.c.t == nil {
		return errClosed
	}
	a.ch.held = true
	a.ch.rsp = nil
	defer func() { a.ch.held = false }()
	return fn()
}

// loadEKLocked finds the EK: from the EK certificate in NV when the TPM
// has one, else from the default RSA template (go-attestation creates it
// transiently to read its public part).
func (a *Attester) loadEKLocked() error {
	eks, err := a.gtpm.EKs()
	if err != nil {
		return fmt.Errorf("endorsement key: %w", err)
	}
	if len(eks) == 0 {
		return errors.New("endorsement key: the TPM reports none")
	}
	a.ek = eks[0]
	der, err := x509.MarshalPKIXPublicKey(a.ek.Public)
	if err != nil {
		return fmt.Errorf("endorsement key: %w", err)
	}
	a.keys = attest.Keys{
		TPM:            a.c.info.String(),
		HardwareRooted: a.c.info.HardwareRooted(),
		EKPublic:       der,
	}
	if a.ek.Certificate != nil {
		a.keys.EKCertificate = a.ek.Certificate.Raw
	}
	return nil
}

func (a *Attester) loadOrCreateAKLocked(akFile string, log *slog.Logger) (AKStatus, error) {
	blob, err := readAKBlob(akFile)
	if err != nil {
		// Unreadable is not "absent": replacing the AK here would make
		// a permission slip look like a cleared TPM.
		return 0, err
	}
	status := AKCreated
	if blob != nil {
		ak, loadErr := a.gtpm.LoadAK(blob)
		if loadErr == nil {
			a.setAK(ak)
			return AKLoaded, nil
		}
		// A new AK is made only if the TPM is reachable and works: if it
		// cannot create one either, both errors are returned and the
		// state file is left alone.
		ak, err := a.gtpm.NewAK(nil)
		if err != nil {
			return 0, fmt.Errorf("AK in %s does not load (%v), and creating a new one failed: %w", akFile, loadErr, err)
		}
		if log != nil {
			log.Warn("attestation key replaced: the saved one no longer loads (TPM cleared, another TPM, or damaged state); the verifier must register this host again",
				"tpm", a.c.info.Addr, "file", akFile, "error", loadErr)
		}
		a.setAK(ak)
		status = AKReplaced
	} else {
		ak, err := a.gtpm.NewAK(nil)
		if err != nil {
			return 0, fmt.Errorf("create AK: %w", err)
		}
		a.setAK(ak)
	}
	newBlob, err := a.ak.Marshal()
	if err == nil {
		err = writeAKBlob(akFile, newBlob)
	}
	if err != nil {
		a.ak.Close(a.gtpm)
		a.ak = nil
		return 0, fmt.Errorf("save AK: %w", err)
	}
	return status, nil
}

func (a *Attester) setAK(ak *goattest.AK) {
	a.ak = ak
	p := ak.AttestationParameters()
	a.keys.AK = attest.AKParams{
		Public:            p.Public,
		CreateData:        p.CreateData,
		CreateAttestation: p.CreateAttestation,
		CreateSignature:   p.CreateSignature,
	}
}

// Keys returns what the host presents at registration: the EK (and its
// certificate when the TPM holds one) and the AK's creation parameters. The
// slices are shared; callers must not modify them.
func (a *Attester) Keys() (attest.Keys, error) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.ak == nil {
		return attest.Keys{}, errClosed
	}
	return a.keys, nil
}

// Activate runs TPM2_ActivateCredential on a verifier's challenge with the
// AK and the EK, and returns the secret it recovers. The TPM refuses when
// the challenge was made for another EK or for an AK name that is not this
// AK's.
func (a *Attester) Activate(ch attest.Challenge) ([]byte, error) {
	// TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET are at most a few hundred
	// bytes; the TPM checks the rest.
	if len(ch.Credential) < 2 || len(ch.Credential) > 1024 || len(ch.Secret) < 2 || len(ch.Secret) > 1024 {
		return nil, fmt.Errorf("tpm: activate credential: credential of %d bytes and secret of %d bytes (want 2..1024 each)", len(ch.Credential), len(ch.Secret))
	}
	var secret []byte
	err := a.locked(func() error {
		if a.ak == nil {
			return errClosed
		}
		var err error
		secret, err = a.ak.ActivateCredentialWithEK(a.gtpm, goattest.EncryptedCredential{Credential: ch.Credential, Secret: ch.Secret}, a.ek)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tpm: %s: activate credential: %w", a.c.info.Addr, err)
	}
	return secret, nil
}

// Quote has the AK sign the SHA-256 values of pcrs with extraData as the
// qualifying data (attest.QuoteData(nonce, report): at most 64 bytes), and
// reads those PCRs in the same critical section. It returns the TPMS_ATTEST
// the AK signed, its TPMT_SIGNATURE (RSASSA-PKCS1v1.5, SHA-256) and the
// PCR values; the slices and the map are the caller's. The values are
// the ones the quote covers: Quote checks the digest of what it read
// against the quote's and retries when an extend by another process (this
// process's extends wait for the lock) landed in between.
//
// Quote does not order itself with the event log. A caller that sends the
// log with the quote must hold internal/measure's lock around Quote and
// the log read, so that no measurement (extend + append) falls between
// them; the lock order is the measurement lock, then the chip's.
func (a *Attester) Quote(extraData []byte, pcrs []int) (quote, sig []byte, vals map[int][32]byte, err error) {
	if len(extraData) == 0 || len(extraData) > maxExtraData {
		return nil, nil, nil, fmt.Errorf("tpm: quote: extra data of %d bytes (want 1..%d)", len(extraData), maxExtraData)
	}
	if len(pcrs) == 0 {
		return nil, nil, nil, errors.New("tpm: quote: no PCRs selected")
	}
	for _, i := range pcrs {
		if err := checkIndex(i); err != nil {
			return nil, nil, nil, err
		}
	}
	sel := slices.Clone(pcrs)
	slices.Sort(sel)
	sel = slices.Compact(sel)
	err = a.locked(func() error {
		if a.ak == nil {
			return errClosed
		}
		for range quoteAttempts {
			gq, err := a.ak.QuotePCRs(a.gtpm, extraData, goattest.HashSHA256, sel)
			if err != nil {
				return err
			}
			read, consistent, err := a.c.readLocked(sel)
			if err != nil {
				return fmt.Errorf("read PCRs: %w", err)
			}
			if !consistent {
				continue
			}
			match, err := quoteCovers(gq.Quote, sel, read)
			if err != nil {
				return err
			}
			if match {
				quote, sig, vals = gq.Quote, gq.Signature, read
				return nil
			}
		}
		return fmt.Errorf("PCRs changed between quote and read in %d attempts", quoteAttempts)
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tpm: %s: quote PCRs %v: %w", a.c.info.Addr, sel, err)
	}
	return quote, sig, vals, nil
}

// quoteCovers reports whether the quote's PCR digest is the SHA-256 of
// vals in ascending PCR order, i.e. whether vals are the values quoted. The
// quote is parsed with go-tpm, independently of internal/attest/quote.
func quoteCovers(raw []byte, sel []int, vals map[int][32]byte) (bool, error) {
	att, err := tpm2.Unmarshal[tpm2.TPMSAttest](raw)
	if err != nil {
		return false, fmt.Errorf("parse own quote: %w", err)
	}
	info, err := att.Attested.Quote()
	if err != nil {
		return false, fmt.Errorf("parse own quote: %w", err)
	}
	h := sha256.New()
	for _, i := range sel {
		v, ok := vals[i]
		if !ok {
			return false, fmt.Errorf("no value read for PCR %d", i)
		}
		h.Write(v[:])
	}
	return subtle.ConstantTimeCompare(h.Sum(nil), info.PCRDigest.Buffer) == 1, nil
}

// Close flushes the AK from the TPM. It does not close the TPM.
func (a *Attester) Close() error {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.ak == nil {
		return nil
	}
	ak := a.ak
	a.ak = nil
	if a.c.t == nil {
		return nil // the connection is gone, and the TPM's handles with it
	}
	a.ch.held = true
	a.ch.rsp = nil
	defer func() { a.ch.held = false }()
	return ak.Close(a.gtpm)
}

// flushLeftovers flushes every transient object and session on a TPM that
// has no resource manager. Bounded: at most maxFlush handles per range.
func flushLeftovers(t transport.TPM) error {
	const maxFlush = 64
	for _, ht := range []tpm2.TPMHT{tpm2.TPMHTTransient, tpm2.TPMHTLoadedSession, tpm2.TPMHTSavedSession} {
		rsp, err := tpm2.GetCapability{
			Capability:    tpm2.TPMCapHandles,
			Property:      uint32(ht) << 24,
			PropertyCount: maxFlush,
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("list handles 0x%02x: %w", uint8(ht), err)
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return fmt.Errorf("list handles 0x%02x: %w", uint8(ht), err)
		}
		for _, h := range hs.Handle {
			if uint8(h>>24) != uint8(ht) {
				break // the list runs on into the next handle type
			}
			if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t); err != nil {
				return fmt.Errorf("flush 0x%08x: %w", uint32(h), err)
			}
		}
	}
	return nil
}
