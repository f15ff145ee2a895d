// Package policy is the verifier's policy of golden values and its
// evaluation into verdicts. It does no I/O: it takes a policy document, a
// parsed event log, the host's report and a clock reading, and returns an
// attest.Verdict whose every failed or undecided check carries a reason.
//
// Three parts:
//
//   - Policy (policy.go, schema.go): the versioned JSON document of golden
//     values, decoded strictly (unknown fields, duplicate keys, wrong types
//     and bad digests are errors that name their JSON path) and bounded.
//   - ParseEventData (eventdata.go): the strict, bounded reader of the
//     one-line descriptions the daemon writes as event data. Event data is
//     not bound to the PCRs (only digests are), so it is hostile input; it
//     only tells which allow-list a digest is judged against.
//   - Evaluate (evaluate.go, evaluate_vm.go): judges the host (PCR 11, PCR
//     13, runtime re-measurements) and each running VM (its latest launch
//     in PCR 12, its introspection) against the policy. The caller has
//     already checked the quote's signature and nonce and that the events
//     replay to the quoted PCRs.
//
// Golden values can be gathered from a known-good host (golden.go). The
// rules, defaults and limits are documented next to the code that applies
// them and in docs/attestation.md.
package policy
