// Package netsw is Bulwark's userspace virtual switch: networks of ports
// (VM NICs as Unix datagram sockets carrying one Ethernet frame per datagram,
// and uplinks on host interfaces), MAC learning, and at every VM port the
// security pipeline: egress rate limit → parse → anti-spoofing → storm
// control → connection tracking → security-group rules → the receiver's
// ingress rate limit.
//
// The decision logic lives in I/O-free subpackages: packet (parsing),
// conntrack (flow state), firewall (rules, groups, compiled policy),
// portsec (anti-spoofing, storm control), ratelimit (token buckets). This
// package owns sockets, goroutines and counters.
package netsw
