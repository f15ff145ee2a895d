package engine

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// ReplayStats summarises one replay.
type ReplayStats struct {
	Packets uint64
	Bytes   uint64
	Alerts  uint64
	// Elapsed is the wall time spent, reading included.
	Elapsed time.Duration
}

// Frame decodes one captured frame and inspects it; frames that are not
// IP (or not decodable) are counted in Stats.NotInspected. A fragment is
// inspected as an IP packet (header-only rules) and, when it completes its
// datagram, the reassembled packet follows; a GRE packet is inspected,
// then the packet it carries, unless a pass rule matched the outer one.
// The alerts are the Detector's, valid until the next call.
func (d *Detector) Frame(link uint32, t time.Time, frame []byte) []Alert {
	d.frameAlerts = d.frameAlerts[:0]
	reason := Decode(link, frame, &d.pkt)
	d.pkt.Time = t
	for layer := 0; ; layer++ {
		if reason != DecodeOK {
			d.stats.NotInspected[reason]++
			if layer == 0 {
				d.stats.Packets++
				d.stats.Bytes += uint64(len(frame))
			}
			return d.frameAlerts
		}
		var whole []byte
		var l3 int
		if d.pkt.Fragment {
			l3 = d.pkt.frag.l3
			whole = d.defrag.add(&d.pkt, t)
		}
		d.frameAlerts = append(d.frameAlerts, d.Packet(&d.pkt)...)
		if layer > 0 {
			// Inner and reassembled packets are not counted again.
			d.stats.Packets--
			d.stats.Bytes -= uint64(len(d.pkt.Frame))
		}
		switch {
		case whole != nil:
			reason = decodeInner(whole, l3, &d.pkt)
		case d.pkt.tunnel > 0 && !d.passed && layer < maxTunnels:
			// The inner packet's frame starts at the GRE payload, as
			// Suricata's tunnel packets do (EVE "packet").
			st := d.pkt.tunnelStart
			reason = decodeInner(d.pkt.Frame[st:], d.pkt.tunnel-st, &d.pkt)
		default:
			return d.frameAlerts
		}
		d.pkt.Time = t
		if layer >= 2*maxTunnels {
			return d.frameAlerts
		}
	}
}

// Replay runs a classic pcap through d and writes each alert to out (nil:
// alerts are only counted). At the end of the capture every flow is
// ended, as Suricata does, so HTTP transactions still open are inspected.
func Replay(r io.Reader, d *Detector, out *EVEWriter) (ReplayStats, error) {
	var st ReplayStats
	start := time.Now()
	pr, err := NewPcapReader(r)
	if err != nil {
		return st, err
	}
	link := pr.LinkType()
	for {
		t, frame, err := pr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("packet %d: %w", st.Packets+1, err)
		}
		st.Packets++
		st.Bytes += uint64(len(frame))
		alerts := d.Frame(link, t, frame)
		for i := range alerts {
			st.Alerts++
			if out != nil {
				if err := out.Write(&alerts[i], st.Packets); err != nil {
					return st, err
				}
			}
		}
	}
	for _, a := range d.Flush() {
		st.Alerts++
		if out != nil {
			if err := out.Write(&a, 0); err != nil {
				return st, err
			}
		}
	}
	st.Elapsed = time.Since(start)
	if out != nil {
		if err := out.Flush(); err != nil {
			return st, err
		}
	}
	return st, nil
}
