// Package prefilter is the IPS engine's multi-pattern prefilter: it finds,
// in one pass over a buffer, which rules' fast patterns occur in it, so the
// engine evaluates only those rules (and the few that have no usable fast
// pattern) instead of all of them.
//
// It has two layers:
//
//   - Matcher: an Aho-Corasick automaton over up to 200,000 patterns of 1 to
//     255 bytes, each case-sensitive or not. Patterns are inserted in ASCII
//     lower case and the input is folded through the same table as it is
//     read, so one automaton serves both kinds; a case-sensitive pattern is
//     confirmed with a byte compare at its end offset. The input alphabet is
//     compressed to the bytes the patterns use (every other byte leads back
//     to the root). States are numbered breadth first; the first ones, the
//     shallow states where a scan spends nearly all its time, get a dense,
//     fully resolved transition row, and deeper states keep only their
//     children and a failure link, which always ends in a dense state. A
//     state that ends a pattern is flagged in the transition itself, so the
//     scan loop is one table load and one branch per byte. A state is
//     carried as the offset of its row, so no multiply sits on the chain
//     of dependent loads, and buffers of 512 bytes or more are walked as
//     two halves at once so the two chains' memory latencies overlap (the
//     first walk goes past the middle only until its state is no deeper
//     than the bytes since the middle, where it agrees with the second).
//   - Prefilter: one Matcher per rule buffer (payload, http.uri, dns.query,
//     ...) built from loaded rules, except that the payload and the HTTP
//     body buffers share one (StreamGroup: a body sent as is is part of
//     the stream, so one scan serves both), the map from a pattern to the rules that
//     share it, and per buffer the rules that must be evaluated whenever the
//     buffer is, because they have no fast pattern the prefilter can use.
//
// The package is pure: no I/O, no goroutines. A built Matcher or Prefilter
// is immutable and safe for concurrent use; each scanning goroutine holds
// its own Scratch, and a scan allocates nothing once the Scratch has grown.
//
// Buffer bytes come from guests and are hostile: a scan is linear in the
// buffer length plus the matches reported, and the deduplicating scans
// visit each matching state's output list at most once per scan, so a
// buffer crafted to match the same patterns at every offset costs no more
// than one that matches them once. Rule text is trusted less than the code
// but more than traffic; it is still bounded: pattern count, pattern length
// and the automaton's size (Options) are checked before and while building.
package prefilter
