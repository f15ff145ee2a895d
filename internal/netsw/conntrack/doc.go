// Package conntrack tracks the connections that cross the virtual switch so
// that the firewall decides each connection once, on its first packet, and
// replies pass without a rule lookup.
//
// The package is pure: it does no I/O, starts no goroutines and never reads
// the clock. Callers pass the current time as int64 nanoseconds (any
// monotonic origin), which makes every timeout testable with a fake clock.
//
// # Flows and directions
//
// A Flow is keyed by the tuple of the packet that created it (Orig, the
// original direction). A packet whose tuple is Orig.Reverse() belongs to the
// same flow in the Reply direction. Both tuples index the flow, so a lookup
// is one map probe in either direction.
//
// # State machines
//
// TCP (no sequence or window tracking: a guest can only send from its own
// addresses, so the threats this would stop are blind in-window injections
// from outside, which the uplink network must handle):
//
//	no flow      --SYN (no ACK/FIN/RST)-->          New (Create)
//	New          --SYN+ACK from reply-->            New, SYN-ACK seen
//	New          --ACK from originator after it-->  Established
//	Established  --FIN either way-->                Closing
//	any          --RST either way-->                Closed (short timeout)
//	Closed, or Closing after FINs both ways
//	             --SYN from originator-->           flow removed; Lookup reports
//	                                                "no flow" so the firewall
//	                                                decides the new connection
//
// Everything else is CTInvalid and does not refresh the flow's timeout: data
// or ACKs from the replier before its SYN-ACK, an originator ACK before the
// SYN-ACK, a SYN on an established flow (a new ISN: port reuse while the old
// connection lives), segments without ACK after the handshake, SYN with FIN
// or RST, and simultaneous open (a SYN from the replier), which is rare
// enough to refuse. A SYN-ACK retransmitted by the replier after the
// handshake is accepted.
//
// UDP and other IP protocols: the first packet creates a New flow with
// UDPTimeout; any packet in the reply direction makes it Established with
// UDPStreamTimeout.
//
// ICMP and ICMPv6: only echo requests create flows (the tuple's ports carry
// the echo identifier); in the flow, the originator may send only echo
// requests and the replier only echo replies, and the first reply makes the
// flow Established. Other informational ICMP (neighbour discovery, router
// solicitation, MLD) is not connection-like: Create refuses it with
// CTInvalid, and Untracked tells the switch to judge it statelessly. ICMP errors are
// never part of a flow: Lookup refuses them and LookupRelated finds the flow
// whose packet they quote (RELATED in iptables terms).
//
// # Bounds and eviction
//
// The table holds at most MaxFlows flows, split evenly between its shards
// (one shard below 8192 flows). Flows live on two LRU lists per shard:
// established ones and the rest (new, closing, closed). When a shard is
// full, Create removes, in order: the least recently used flow of either
// list if it has expired, else the least recently used non-established
// flow. (Recency is kept to within a second, so that a busy flow's packets
// do not each reorder the list.) An established flow is never evicted to
// make room: it leaves by timeout, Delete, or after FIN/RST moves it off the
// established list. So a SYN flood churns the non-established list and
// leaves established connections alone. When every flow of the shard is
// established and live, Create fails with CTFull.
//
// # Concurrency and ownership
//
// A Table is safe for concurrent use. It is split into shards, each with its
// own mutex, chosen by a seeded hash that is the same for a tuple and its
// reverse. Lookup on an existing flow does not allocate; Create allocates one
// Flow.
//
// A *Flow returned by Lookup, Create, LookupRelated or Range stays valid
// memory forever (it is never recycled) but is live only until the flow is
// removed (Delete, Expire, eviction, timeout noticed by Lookup, or reuse of a
// closed tuple); Removed reports that. Callers read the immutable exported
// fields freely, and State, Gen and Expires through their methods (atomic
// loads); they never write a Flow except through Table.SetFlowGen.
package conntrack
