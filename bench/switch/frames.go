//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/bulwark-project/bulwark/internal/netsw/firewall"
	"github.com/bulwark-project/bulwark/internal/netsw/packet/packettest"
)

// The two endpoints, identical on both paths.
var (
	mac1 = packettest.MAC{0x02, 0, 0, 0, 0, 0x01}
	mac2 = packettest.MAC{0x02, 0, 0, 0, 0, 0x02}
	ip1  = netip.MustParseAddr("10.0.0.1")
	ip2  = netip.MustParseAddr("10.0.0.2")
)

const (
	frameLen = 64 // Ethernet + IPv4 + UDP + 22 bytes of payload, no FCS
	udpSport = 40000
	udpDport = 7777
	// The first payload byte says what a frame is for.
	markWarm    = 'W' // warm-up: opens the flow, not counted
	markMeasure = 'M' // counted
	markReply   = 'R' // the receiver's one reply, which makes the flow established in Linux conntrack
	payloadOff  = packettest.IPv4L4 + packettest.UDPLen
)

// frame returns the 64-byte UDP frame from endpoint 1 to endpoint 2 with the
// given mark (or, for markReply, the reverse frame).
func frame(mark byte) []byte {
	payload := make([]byte, frameLen-payloadOff)
	payload[0] = mark
	copy(payload[1:], "bulwark-switch-bench")
	fl := packettest.Flow{SrcMAC: mac1, DstMAC: mac2, Src: ip1, Dst: ip2}
	b := fl.UDP(udpSport, udpDport, payload)
	if mark == markReply {
		b = fl.Reverse().UDP(udpDport, udpSport, payload)
	}
	if len(b) != frameLen {
		panic(fmt.Sprintf("frame is %d bytes, want %d", len(b), frameLen))
	}
	return b
}

// kindOf returns the mark of one of our frames travelling from 1 to 2, or 0.
func kindOf(b []byte) byte {
	if len(b) != frameLen || binary.BigEndian.Uint16(b[12:14]) != 0x0800 || b[packettest.EthLen+9] != 17 {
		return 0
	}
	if [6]byte(b[0:6]) != mac2 || [6]byte(b[6:12]) != mac1 {
		return 0
	}
	return b[payloadOff]
}

// filler is the i-th of the rules that never match the benchmark's traffic;
// the same list is given to Bulwark and to nftables.
type filler struct {
	tcp   bool
	dport uint16 // 0: any
	src   string // "": any
}

func fillerRule(i int) filler {
	host := fmt.Sprintf("%d.%d", (i>>8)&255, i&255)
	switch i % 4 {
	case 0:
		return filler{tcp: true, dport: uint16(1000 + i%20000)}
	case 1:
		return filler{dport: uint16(20000 + i%20000)}
	case 2:
		return filler{tcp: true, dport: 443, src: "192.168." + host}
	default:
		return filler{src: "172.16." + host}
	}
}

// bulwarkGroups is the firewall of the Bulwark path: group "web" (both ports)
// with n non-matching ingress rules, then an ingress rule that allows UDP from
// 10.0.0.1. Egress is the network default (allow).
func bulwarkGroups(n int) []firewall.Group {
	rules := make([]firewall.Rule, 0, n+1)
	for i := range n {
		f := fillerRule(i)
		r := firewall.Rule{ID: fmt.Sprintf("f%d", i), Direction: firewall.Ingress, Action: firewall.Allow,
			Proto: firewall.UDP, PortMin: f.dport, PortMax: f.dport, ICMPType: -1}
		if f.tcp {
			r.Proto = firewall.TCP
		}
		if f.src != "" {
			r.RemoteCIDR = f.src + "/32"
		}
		rules = append(rules, r)
	}
	rules = append(rules, firewall.Rule{ID: "allow-udp", Direction: firewall.Ingress, Action: firewall.Allow,
		Proto: firewall.UDP, ICMPType: -1, RemoteCIDR: ip1.String() + "/32"})
	return []firewall.Group{{Name: "web", Rules: rules}}
}

// nftRuleset returns the nftables rule set of the bridge path.
//
// stateful: an "ip" family table whose forward chain sees bridged frames
// through br_netfilter; it accepts established/related flows first, drops
// invalid ones, then has the n non-matching rules, then accepts UDP from
// 10.0.0.1, and drops everything else. This is the shape of Bulwark's
// firewall: conntrack first, rules only for new flows.
//
// Not stateful: a "bridge" family table (no conntrack, no br_netfilter) that
// accepts UDP 10.0.0.1 -> 10.0.0.2 with its first rule, then has the n
// non-matching rules and a drop policy: the cheapest filter the bridge can run.
func nftRuleset(n int, stateful bool) string {
	var b strings.Builder
	family := "bridge"
	if stateful {
		family = "ip"
	}
	fmt.Fprintf(&b, "table %s bwbench {\n\tchain forward_filter {\n\t\ttype filter hook forward priority 0; policy drop;\n", family)
	allow := fmt.Sprintf("\t\tip saddr %s ip daddr %s ip protocol udp counter accept\n", ip1, ip2)
	if stateful {
		b.WriteString("\t\tct state established,related counter accept\n")
		b.WriteString("\t\tct state invalid counter drop\n")
	} else {
		b.WriteString(allow)
	}
	for i := range n {
		f := fillerRule(i)
		b.WriteString("\t\t")
		if f.src != "" {
			fmt.Fprintf(&b, "ip saddr %s ", f.src)
		}
		fmt.Fprintf(&b, "ip daddr %s ", ip2)
		proto := "udp"
		if f.tcp {
			proto = "tcp"
		}
		if f.dport != 0 {
			fmt.Fprintf(&b, "%s dport %d accept\n", proto, f.dport)
		} else {
			fmt.Fprintf(&b, "ip protocol %s accept\n", proto)
		}
	}
	if stateful {
		b.WriteString(allow)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}
