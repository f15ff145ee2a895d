// Package tpm gives Bulwark's measured launch and remote attestation their one
// seam to a TPM 2.0: extend a PCR with a SHA-256 digest, read PCRs back from
// the SHA-256 bank, and (Attester) prove keys and quote PCRs.
//
// Three sources sit behind the same [TPM] interface, chosen by [Config]:
//
//   - the host TPM through the kernel's resource manager, /dev/tpmrm0 (the
//     default, and the only source whose values are rooted in hardware);
//   - a swtpm instance over its server socket (unix or TCP), for development,
//     tests and the demo: a software TPM whose state is a file on disk, so it
//     proves nothing to a remote verifier;
//   - [None], the explicit no-TPM mode: extends are accepted and dropped, reads
//     fail with [ErrNoTPM], and [Info] says plainly that nothing is
//     hardware-rooted. Callers keep their event log; there is nothing to quote.
//
// Open never falls back silently: a missing device is an error wrapping
// [ErrNoTPM], and the no-TPM mode has to be asked for.
//
// The package speaks TPM2_PCR_Extend and TPM2_PCR_Read through go-tpm's tpm2
// package; [Attester] (attest.go) adds the endorsement and attestation keys,
// credential activation and quotes through go-attestation, on the same chip
// and under the same lock. Event logs live in internal/measure.
package tpm
