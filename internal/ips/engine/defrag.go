package engine

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Defragmentation limits.
const (
	// MaxDatagram is the largest reassembled IP payload (IPv4's total
	// length and IPv6's payload length are 16-bit).
	MaxDatagram = 65535
	// maxFragments bounds the fragments accepted per datagram (a 64 KiB
	// datagram in 8-byte pieces has 8,192).
	maxFragments = 8192
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

// datagram collects one datagram's payload; the first copy of each byte
// wins on overlaps, as in the stream reassembler. cov has one bit per
// payload byte (8 KiB for the largest datagram).
type datagram struct {
	first   []byte // the offset-0 fragment's frame up to its headers
	fi      fragInfo
	payload []byte
	cov     []uint64
	ncov    int // bytes covered
	pieces  int
	end     int // payload length, known from the last fragment; -1 until then
	bytes   int // what the datagram counts against maxBytes
	seen    time.Time
}

// put copies the bytes of data at off that are not held yet.
func (dg *datagram) put(off int, data []byte) {
	if need := off + len(data); need > len(dg.payload) {
		dg.payload = append(dg.payload, make([]byte, need-len(dg.payload))...)
	}
	for i, b := range data {
		at := off + i
		w, bit := at>>6, uint64(1)<<(at&63)
		if dg.cov[w]&bit == 0 {
			dg.cov[w] |= bit
			dg.payload[at] = b
			dg.ncov++
		}
	}
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
	limit := MaxDatagram - (fi.hdrEnd - fi.l3)
	if fi.off+len(fi.data) > limit || dg.pieces >= maxFragments || df.held+len(fi.data)+len(fi.data)/8 > df.maxBytes {
		df.dropped++
		df.drop(k, dg)
		return nil
	}
	if dg.cov == nil {
		dg.cov = make([]uint64, (MaxDatagram+63)/64)
		dg.bytes = 8 * len(dg.cov)
		df.held += dg.bytes
	}
	if fi.off == 0 && dg.first == nil {
		dg.first = append([]byte(nil), p.Frame[:fi.hdrEnd]...)
		dg.fi = *fi
	}
	if !fi.more {
		dg.end = fi.off + len(fi.data)
	}
	before := cap(dg.payload)
	dg.put(fi.off, fi.data)
	dg.pieces++
	grown := cap(dg.payload) - before
	dg.bytes += grown
	df.held += grown
	if dg.end < 0 || dg.first == nil || dg.ncov < dg.end || len(dg.payload) > dg.end {
		return nil
	}
	df.drop(k, dg)
	df.done++
	return assemble(dg, dg.payload)
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
