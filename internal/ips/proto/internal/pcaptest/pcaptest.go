// Package pcaptest reads the suricata-verify sample captures for the
// protocol parsers' tests: a classic pcap reader (Ethernet, VLAN, BSD
// loopback; IPv4 and IPv6; TCP and UDP) and a naive in-order TCP stream
// builder good enough for clean captures. It is test support only: it
// trusts its input and is not used by the product.
package pcaptest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/bulwark-project/bulwark/internal/shareddata"
)

// Packet is one decoded TCP or UDP packet.
type Packet struct {
	Src, Dst         string // "addr:port"
	TCP              bool
	Seq              uint32
	SYN, FIN, ACKSet bool
	Payload          []byte
}

// DataDir is the shared suricata-verify data (internal/shareddata);
// "" when it cannot be found, and the callers' reads then fail naming it.
func DataDir() string {
	d, err := shareddata.Dir("suricata-verify")
	if err != nil {
		return filepath.Join("..", "shared", "data", "suricata-verify")
	}
	return d
}

// Read decodes every TCP/UDP packet of a classic pcap file.
func Read(path string) ([]Packet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("%s: short pcap", path)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if binary.BigEndian.Uint32(b) == 0xa1b2c3d4 || binary.BigEndian.Uint32(b) == 0xa1b23c4d {
		bo = binary.BigEndian
	}
	link := bo.Uint32(b[20:])
	var out []Packet
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		if p, ok := decode(link, b[off:off+n]); ok {
			out = append(out, p)
		}
		off += n
	}
	return out, nil
}

func decode(link uint32, f []byte) (Packet, bool) {
	var p Packet
	switch link {
	case 0: // BSD loopback: 4-byte family
		if len(f) < 4 {
			return p, false
		}
		f = f[4:]
	case 1:
		if len(f) < 14 {
			return p, false
		}
		et := binary.BigEndian.Uint16(f[12:])
		f = f[14:]
		for et == 0x8100 && len(f) >= 4 {
			et = binary.BigEndian.Uint16(f[2:])
			f = f[4:]
		}
	case 101, 12:
	default:
		return p, false
	}
	if len(f) < 1 {
		return p, false
	}
	var proto byte
	var src, dst string
	switch f[0] >> 4 {
	case 4:
		ihl := int(f[0]&0xf) * 4
		tot := int(binary.BigEndian.Uint16(f[2:]))
		if len(f) < ihl || tot > len(f) || tot < ihl {
			return p, false
		}
		proto = f[9]
		src, dst = fmt.Sprintf("%d.%d.%d.%d", f[12], f[13], f[14], f[15]), fmt.Sprintf("%d.%d.%d.%d", f[16], f[17], f[18], f[19])
		f = f[ihl:tot]
	case 6:
		if len(f) < 40 {
			return p, false
		}
		proto = f[6]
		src, dst = fmt.Sprintf("%x", f[8:24]), fmt.Sprintf("%x", f[24:40])
		f = f[40:]
	default:
		return p, false
	}
	switch proto {
	case 6:
		if len(f) < 20 {
			return p, false
		}
		doff := int(f[12]>>4) * 4
		if doff > len(f) {
			return p, false
		}
		p.TCP = true
		p.Seq = binary.BigEndian.Uint32(f[4:])
		p.SYN, p.FIN, p.ACKSet = f[13]&2 != 0, f[13]&1 != 0, f[13]&0x10 != 0
		p.Src = fmt.Sprintf("%s:%d", src, binary.BigEndian.Uint16(f[0:]))
		p.Dst = fmt.Sprintf("%s:%d", dst, binary.BigEndian.Uint16(f[2:]))
		p.Payload = f[doff:]
	case 17:
		if len(f) < 8 {
			return p, false
		}
		p.Src = fmt.Sprintf("%s:%d", src, binary.BigEndian.Uint16(f[0:]))
		p.Dst = fmt.Sprintf("%s:%d", dst, binary.BigEndian.Uint16(f[2:]))
		p.Payload = f[8:]
	default:
		return p, false
	}
	return p, true
}

// Streams returns the client and server byte streams of the first TCP
// connection in pkts: segments ordered by sequence number, retransmitted
// bytes dropped, holes closed up. The client is the SYN's sender (else the
// first packet's).
func Streams(pkts []Packet) (client, server []byte) {
	var cli, srv string
	for _, p := range pkts {
		if p.TCP && p.SYN && !p.ACKSet {
			cli, srv = p.Src, p.Dst
			break
		}
	}
	if cli == "" {
		for _, p := range pkts {
			if p.TCP {
				cli, srv = p.Src, p.Dst
				break
			}
		}
	}
	return stream(pkts, cli, srv), stream(pkts, srv, cli)
}

func stream(pkts []Packet, from, to string) []byte {
	var segs []Packet
	for _, p := range pkts {
		if p.TCP && p.Src == from && p.Dst == to && len(p.Payload) > 0 {
			segs = append(segs, p)
		}
	}
	if len(segs) == 0 {
		return nil
	}
	base := segs[0].Seq
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].Seq-base < segs[j].Seq-base })
	var out []byte
	next := segs[0].Seq
	for _, s := range segs {
		d := int32(next - s.Seq)
		if d < 0 {
			d = 0 // hole: close it up
		}
		if int(d) >= len(s.Payload) {
			continue
		}
		out = append(out, s.Payload[d:]...)
		next = s.Seq + uint32(len(s.Payload))
	}
	return out
}
