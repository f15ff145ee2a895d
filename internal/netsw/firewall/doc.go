// Package firewall compiles security groups into an immutable Policy and
// decides, for the first packet of each connection, whether the switch may
// open it. It is pure: no I/O, no clock, no goroutines.
//
// # Model
//
// A Group is an ordered list of Rules. A Port (a VM NIC) belongs to up to
// MaxGroupsPerPort groups, in order. A rule has a direction (ingress: to the
// port; egress: from the port), an action (allow, drop, reject), a
// protocol, a destination port range (TCP/UDP) or ICMP type, and at most one
// remote: a CIDR, a named IP set, or a remote group (the addresses of the
// ports that belong to that group). Ports of other networks never count as
// members: addresses are only unique within a network, so a remote group or
// the same-group default is resolved among the members attached to the same
// network as the port whose rules are evaluated.
//
// # Evaluation
//
// Evaluate decides a new flow from srcPort to dstPort (either may be -1 for
// "not a VM port", such as the uplink, whose side has no rules):
//
//  1. the egress rules of srcPort, with the packet's destination as the
//     remote: groups in the port's order, rules in group order, first match
//     wins; no match applies the network's default egress action (Allow
//     unless configured otherwise);
//  2. if that allowed, the ingress rules of dstPort with the packet's
//     source as the remote, in the same order; no match applies the
//     network's default ingress: SameGroup (the default) allows sources that
//     are members, on the same network, of any of dstPort's groups and
//     denies the rest; DenyAll and AllowAll do what they say.
//
// Both stages must allow. A port in no group has no rules: its egress
// follows the default and SameGroup ingress denies everything. A port id that is not in the policy (≥ 0 but
// unknown, for instance attached after the last compile) is denied: the
// firewall fails closed. Remote addresses are matched as the packet carries
// them; they are trustworthy from VM ports, which anti-spoofing binds to
// their addresses, and only as trustworthy as the uplink network otherwise.
//
// The Verdict carries the Action, the drop Reason (OK, FWDrop, FWReject or
// FWDefault), and the deciding rule. Reject asks the switch to answer with a
// TCP RST or an ICMP unreachable instead of dropping silently.
//
// # Statefulness and re-evaluation
//
// Rules are stateful, as in OpenStack: the switch consults the policy only
// for packets that conntrack does not already know, so an allowed flow's
// replies pass without rules. Each Policy has a generation (Gen). When the
// switch installs a new policy it re-checks existing flows with Allows (on
// their original tuple and ports) and cuts those now denied (FWRevoked).
//
// Membership is dynamic in the sense that it is compiled in: when a port
// joins or leaves a group, or changes address, the caller recompiles and
// installs a new Policy (a new generation). A Policy never changes after
// Compile and is safe for any number of concurrent readers; Compile either
// returns a complete policy or an error, so a bad update never leaves a port
// without filtering.
//
// # Counters
//
// Each rule counts the new flows it matched (both stages count). Counters
// are keyed by (group, rule id) in a Counters value that the caller passes
// to each Compile, so hits survive recompiles; a rule that disappears from
// the configuration keeps its final count in RuleHits, marked Removed (the
// last MaxRemovedHits such rules).
package firewall
