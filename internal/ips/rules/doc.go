// Package rules parses the subset of the Suricata rule language that real
// rule sets (ET Open) use into a typed, validated model that the IPS engine
// evaluates: a header (action, protocol, address and port sets), per-buffer
// ordered lists of content, pcre, byte_test, byte_jump and isdataat matches
// with their modifiers resolved, flow options, flowbits, thresholds, and the
// fast pattern chosen for the engine's multi-pattern prefilter.
//
// The package is pure: it reads the rule text it is given and nothing else.
// Rule text is hostile input (a rule file may come from anywhere), so every
// length, count and nesting depth is bounded, and regular expressions are
// translated to Go's linear-time RE2 dialect or refused with a reason.
//
// A rule that uses a keyword, protocol or regular-expression feature outside
// the supported subset is skipped, not guessed at: Parse returns an *Error
// with Unsupported set and a reason naming the keyword, and Load counts it.
package rules
