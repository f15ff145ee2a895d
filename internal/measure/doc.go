// Package measure is Bulwark's measured launch: it hashes what the daemon is
// about to trust or run, extends a TPM PCR with the digest and appends a
// record to a TCG event log (package eventlog), so that a verifier can
// replay the log to the PCR values and compare each digest with a golden
// value.
//
// # PCRs
//
//   - PCR 11 (PCRHost), the hypervisor layer, measured once at daemon start:
//     the bulwark binary (/proc/self/exe), the QEMU binary the daemon runs,
//     the firmware QEMU loads (from the descriptor every VM gets), each
//     embedded seccomp allow list, and a canonical string of the effective
//     hardening configuration.
//   - PCR 12 (PCRLaunch), VM launches: per VM start, its definition
//     (encoding/json of vm.Spec: fields in declaration order, map keys
//     sorted), its command line, each disk (identity, and the recorded
//     content digest of pristine read-only layers), then its kernel and
//     initrd, hashed from the very descriptors the backend hands to QEMU.
//   - PCR 13 (runtime.go), runtime integrity: one extend per distinct
//     mismatch between a running daemon's or QEMU's code and its file.
//
// # Ordering and crashes
//
// Each measurement extends the PCR first and then appends (and fsyncs) the
// record. A crash between the two leaves the PCR with one extend more than
// the log: replay no longer matches, and a verifier flags the host. The
// opposite order would let a crash leave a record that was never extended,
// which a verifier would also flag; we choose the one where the TPM never
// lags behind what the host admits to.
//
// # The log across daemon restarts
//
// The log lives at STATE/measure/eventlog.bin (directory root-owned 0700,
// file 0600, opened O_APPEND|O_NOFOLLOW). At start, Open applies one rule:
//
//  1. If the log exists and parses, and its replay equals the TPM's current
//     values of PCRs 11, 12 and 13, appending continues.
//  2. Otherwise (no log, a log that does not parse, or one that does not
//     replay: swtpm restarted, the file was edited or lost) an existing log
//     is renamed aside to eventlog.bin.broken-UNIXNANO and reported loudly,
//     and a new log is started only if PCRs 11, 12 and 13 are at their reset
//     value (32 zero bytes). If they are not, Open fails with
//     ErrPCRsNotFresh: those PCRs hold extends no log explains, and until
//     the TPM is reset (a reboot) nothing measured now could be verified.
//
// In the no-TPM mode there are no PCRs to compare: a log that parses is
// kept, one that does not is renamed aside. Nothing is hardware-rooted and
// Status says so.
package measure
