// Package eventlog writes, parses and replays the TCG crypto-agile event log
// that Bulwark keeps beside its TPM measurements.
//
// # Format
//
// The layout is the one in the TCG PC Client Platform Firmware Profile
// specification (section "Event Logging"), the same layout that UEFI
// firmware writes to /sys/kernel/security/tpm0/binary_bios_measurements, so
// that off-the-shelf readers (go-attestation, tpm2-tools' tpm2_eventlog) can
// check a Bulwark log. All integers are little-endian.
//
//  1. One TCG_PCR_EVENT in the legacy SHA-1 layout: pcrIndex 0, eventType
//     EV_NO_ACTION, a 20-byte zero digest, eventSize, and as event data a
//     TCG_EfiSpecIDEvent: signature "Spec ID Event03\0", platformClass 0
//     (client; the profile we follow), specVersionMinor 0, specVersionMajor
//     2, specErrata 2 (the value for revision 1.05 and later of the profile;
//     readers, go-attestation included, do not check it), uintnSize 2
//     (UINTN is 64 bits), numberOfAlgorithms 1 with {TPM_ALG_SHA256 0x000B,
//     32}, vendorInfoSize 0. It extends nothing; it tells the reader which
//     digests follow.
//  2. Any number of TCG_PCR_EVENT2 records: pcrIndex, eventType,
//     TPML_DIGEST_VALUES (count, then per algorithm its TPM_ALG_ID and the
//     digest, whose size comes from the header), eventSize and event data.
//
// # Choices
//
// Bulwark measures one bank, SHA-256. Every record Bulwark writes has type
// EV_IPL (0x0D): its digest is the SHA-256 of the measured thing (a binary,
// firmware, a configuration, a kernel), and its event data is a short UTF-8
// description of what was measured ("bulwark-binary sha256=... path=..."),
// which is not itself hashed. That is what EV_IPL means in the profile (code
// loaded and measured by the platform's IPL), and what GRUB and systemd-boot
// do. EV_EVENT_TAG was not chosen because its digest must be the hash of the
// tagged event data itself, and EV_COMPACT_HASH because it is meant for a
// digest-only record with at most a few bytes of data. The type is a field
// of Event, so a caller may still choose another one.
//
// The event data is descriptive and untrusted: only the digests are bound to
// the PCRs. A verifier must compare digests against golden values and use the
// description for display only.
//
// # Replay
//
// Replay computes the SHA-256 PCR values a log implies: each PCR starts at 32
// zero bytes and each record extends it as PCR = SHA256(PCR || digest).
// EV_NO_ACTION records extend nothing. Start-up locality (a PCR 0 detail of
// Intel TXT) is not modelled; Bulwark's PCRs are above 7.
//
// # Bounds
//
// Parse takes a log from an untrusted source and refuses, with an error that
// names the record: event data over MaxParsedEventDataSize, more than
// MaxEvents records, a header whose digest sizes do not match the algorithm,
// algorithms the package does not know or that the header did not declare,
// PCR indexes past 23, and truncation. The writer is stricter: event data up
// to MaxEventDataSize and valid UTF-8.
//
// The package does no I/O beyond the io.Writer it is handed.
package eventlog
