package engine

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"
)

// Defragmentation limits.
const (
	// MaxDatagram is the largest reassembled IP payload (IPv4's total
	// length and IPv6's payload length are 16-bit).
	MaxDatagram = 65535
	// maxFragments bounds the fragments held per datagram.
	maxFragments = 256
	// defragTimeout drops a datagram whose fragments stop arriving
	// (Suricata's defrag timeout default is 60 s).
	defragTimeout = 60 * time.Second
)

// fragInfo is what Decode records about a fragment.
type fragInfo struct {
	id   uint32
	off  int  // payload offset in the datagram, bytes
	more bool // more fragments follow
	data []byte
	// l3 is the IP header's offset in the frame; hdrEnd the end of the
	// headers kept in the reassembled frame (IPv4: the IP header; IPv6:
	// everything before the fragment header); nextOff (IPv6) is the
	// frame offset of the next-header byte that names the fragment
	// header, and next the protocol after it.
	l3, hdrEnd, nextOff int
	next                uint8
	v6                  bool
}

type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
}

type fragPiece struct {
	off  int
	data []byte
}

// datagram collects one datagram's fragments (copied; first copy of each
// byte wins on overlaps, as the stream reassembler does).
type datagram struct {
	first  []byte // the offset-0 fragment's frame up to its headers
	fi     fragInfo
	pieces []fragPiece
	end    int // payload length, known from the last fragment; -1 until then
	bytes  int
	seen   time.Time
}

// defrag is a Detector's bounded IP reassembly table.
type defrag struct {
	m        map[fragKey]*datagram
	max      int
	maxBytes int
	held     int
	// dropped counts fragments refused (table or memory full, a
	// datagram too large or in too many pieces).
	dropped uint64
	done    uint64
}

// add takes a fragment of packet p (its frame still valid) and returns
// the reassembled frame when the datagram is complete.
func (df *defrag) add(p *Packet, now time.Time) []byte {
	fi := &p.frag
	k := fragKey{src: p.Src, dst: p.Dst, id: fi.id, proto: p.Proto}
	dg := df.m[k]
	if dg != nil && now.Sub(dg.seen) > defragTimeout {
		df.drop(k, dg)
		dg = nil
	}
	if dg == nil {
		if len(df.m) >= df.max {
			df.expire(now)
			if len(df.m) >= df.max {
				df.dropped++
				return nil
			}
		}
		dg = &datagram{end: -1}
		df.m[k] = dg
	}
	dg.seen = now
	if fi.off+len(fi.data) > MaxDatagram-(fi.hdrEnd-fi.l3) || len(dg.pieces) >= maxFragments || df.held+len(fi.data) > df.maxBytes {
		df.dropped++
		df.drop(k, dg)
		return nil
	}
	if fi.off == 0 && dg.first == nil {
		dg.first = append([]byte(nil), p.Frame[:fi.hdrEnd]...)
		dg.fi = *fi
	}
	if !fi.more {
		dg.end = fi.off + len(fi.data)
	}
	dg.pieces = append(dg.pieces, fragPiece{off: fi.off, data: append([]byte(nil), fi.data...)})
	dg.bytes += len(fi.data)
	df.held += len(fi.data)
	if dg.end < 0 || dg.first == nil {
		return nil
	}
	if !dg.complete() {
		return nil
	}
	// The first copy of each byte wins.
	payload := make([]byte, dg.end)
	covered := make([]bool, dg.end)
	for _, pc := range dg.pieces {
		for i, b := range pc.data {
			if at := pc.off + i; at < dg.end && !covered[at] {
				covered[at], payload[at] = true, b
			}
		}
	}
	df.drop(k, dg)
	df.done++
	return assemble(dg, payload)
}

// complete reports whether the pieces cover [0, end).
func (dg *datagram) complete() bool {
	ps := slices.Clone(dg.pieces)
	slices.SortFunc(ps, func(a, b fragPiece) int { return a.off - b.off })
	reach := 0
	for _, pc := range ps {
		if pc.off > reach {
			return false
		}
		reach = max(reach, pc.off+len(pc.data))
	}
	return reach >= dg.end
}

// assemble builds the reassembled frame: the first fragment's link and IP
// headers with the lengths fixed and the fragment fields removed, then the
// payload.
func assemble(dg *datagram, payload []byte) []byte {
	fi := &dg.fi
	frame := append(make([]byte, 0, len(dg.first)+len(payload)), dg.first...)
	ip := frame[fi.l3:]
	if fi.v6 {
		frame[fi.nextOff] = fi.next
		binary.BigEndian.PutUint16(ip[4:], uint16(len(frame)-fi.l3-40+len(payload)))
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(len(frame)-fi.l3+len(payload)))
		binary.BigEndian.PutUint16(ip[6:], 0)
	}
	return append(frame, payload...)
}

func (df *defrag) drop(k fragKey, dg *datagram) {
	df.held -= dg.bytes
	delete(df.m, k)
}

// expire drops datagrams older than the timeout; it walks the table once
// and runs only when the table is full.
func (df *defrag) expire(now time.Time) {
	for k, dg := range df.m {
		if now.Sub(dg.seen) > defragTimeout {
			df.drop(k, dg)
		}
	}
}
