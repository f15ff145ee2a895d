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
// IP (or not decodable) are counted in Stats.NotInspected. The alerts
// are the Detector's, valid until the next call.
func (d *Detector) Frame(link uint32, t time.Time, frame []byte) []Alert {
	reason := Decode(link, frame, &d.pkt)
	d.pkt.Time = t
	if reason != DecodeOK {
		d.stats.NotInspected[reason]++
		d.stats.Packets++
		d.stats.Bytes += uint64(len(frame))
		return nil
	}
	if !d.pkt.Fragment {
		return d.Packet(&d.pkt)
	}
	// A fragment is inspected as an IP packet (header-only rules); when
	// it completes its datagram, the reassembled packet follows, with
	// its alerts after the fragment's.
	whole := d.defrag.add(&d.pkt, t)
	alerts := d.Packet(&d.pkt)
	if whole == nil || Decode(link, whole, &d.pkt) != DecodeOK || d.pkt.Fragment {
		return alerts
	}
	d.pkt.Time = t
	d.fragAlerts = append(d.fragAlerts[:0], alerts...)
	d.fragAlerts = append(d.fragAlerts, d.Packet(&d.pkt)...)
	return d.fragAlerts
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
