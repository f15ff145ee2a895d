// Package netsw is Bulwark's userspace virtual switch: networks of ports
// (VM NICs as Unix datagram sockets carrying one Ethernet frame per datagram,
// and uplinks on host interfaces), MAC learning, and at every VM port the
// security pipeline, an ordered list of stages (stage.go): egress rate
// limit → parse → anti-spoofing and storm control, then per destination
// connection tracking and security-group rules → inspection stages (the
// IPS) → mirror stages → the receiver's ingress rate limit. Every frame
// delivered to a port, ARP and established flows included, passes the
// whole per-destination list.
//
// Forwarding rules a guest cannot widen (issue 15):
//   - unknown unicast is never flooded to VM ports (every VM MAC is a
//     static entry): from a VM it goes to the uplink only, under storm
//     control, or is dropped (unknown_unicast) on a VM-only network;
//   - a VM port receives only IP packets for its own addresses or group
//     addresses, whatever the Ethernet destination;
//   - ICMP errors pass only from the quoted flow's peer port (or from
//     beyond the uplink when that is the peer), at most ICMPErrorPPS per
//     VM port;
//   - DHCP server messages from VMs are rogue_dhcp by port or by content.
//
// Every drop is counted per port and reason; see droplog.go for which are
// logged and how often. A VM NIC's counters carry over its restarts.
//
// The decision logic lives in I/O-free subpackages: packet (parsing),
// conntrack (flow state), firewall (rules, groups, compiled policy),
// portsec (anti-spoofing, storm control), ratelimit (token buckets). This
// package owns sockets, goroutines and counters.
package netsw
