package engine

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/bulwark-project/bulwark/internal/ips/rules"
)

// EVEOptions selects the optional parts of EVE alert records.
type EVEOptions struct {
	// Packet adds "packet" (the frame, base64) and "packet_info"
	// {"linktype"}, as Suricata's eve alert "packet: yes".
	Packet bool
	// Ether adds "ether" {"src_mac","dest_mac"} for Ethernet frames, as
	// Suricata's eve "ethernet: yes".
	Ether bool
	// Inline: the engine blocks what drop and reject rules match, so
	// their alert.action is "blocked" (Suricata in IPS mode); otherwise
	// every alert says "allowed".
	Inline bool
	// PktSrc is the pkt_src value ("wire/pcap" for a replay; "" omits).
	PktSrc string
}

// eveAlert is Suricata's eve.json alert record; the field names, their
// order and their value formats follow Suricata 7's output-json-alert.
type eveAlert struct {
	Timestamp  string         `json:"timestamp"`
	FlowID     uint64         `json:"flow_id"`
	PcapCnt    uint64         `json:"pcap_cnt,omitempty"`
	EventType  string         `json:"event_type"`
	SrcIP      string         `json:"src_ip"`
	SrcPort    *uint16        `json:"src_port,omitempty"`
	DestIP     string         `json:"dest_ip"`
	DestPort   *uint16        `json:"dest_port,omitempty"`
	Proto      string         `json:"proto"`
	PktSrc     string         `json:"pkt_src,omitempty"`
	ICMPType   *uint8         `json:"icmp_type,omitempty"`
	ICMPCode   *uint8         `json:"icmp_code,omitempty"`
	Ether      *eveEther      `json:"ether,omitempty"`
	TxID       *uint64        `json:"tx_id,omitempty"`
	Alert      eveAlertBody   `json:"alert"`
	AppProto   string         `json:"app_proto,omitempty"`
	Direction  string         `json:"direction"`
	Packet     string         `json:"packet,omitempty"`
	PacketInfo *evePacketInfo `json:"packet_info,omitempty"`
}

type eveEther struct {
	SrcMAC  string `json:"src_mac"`
	DestMAC string `json:"dest_mac"`
}

type eveAlertBody struct {
	Action      string              `json:"action"`
	GID         uint32              `json:"gid"`
	SignatureID uint32              `json:"signature_id"`
	Rev         uint32              `json:"rev"`
	Signature   string              `json:"signature"`
	Category    string              `json:"category"`
	Severity    int                 `json:"severity"`
	Metadata    map[string][]string `json:"metadata,omitempty"`
}

type evePacketInfo struct {
	Linktype     uint32 `json:"linktype"`
	LinktypeName string `json:"linktype_name,omitempty"`
}

// linkTypeNames are Suricata 8's packet_info.linktype_name values.
var linkTypeNames = map[uint32]string{
	LinkNull: "NULL", LinkEthernet: "EN10MB", LinkRaw: "RAW", LinkIPv4: "IPv4", LinkIPv6: "IPv6",
}

// EVEWriter writes alerts as EVE JSON lines. It buffers; call Flush.
type EVEWriter struct {
	w    *bufio.Writer
	opts EVEOptions
}

// NewEVEWriter returns a writer of EVE lines to w.
func NewEVEWriter(w io.Writer, opts EVEOptions) *EVEWriter {
	return &EVEWriter{w: bufio.NewWriterSize(w, 64<<10), opts: opts}
}

// Flush writes what is buffered.
func (ew *EVEWriter) Flush() error { return ew.w.Flush() }

// ProtoName is Suricata's name for an IP protocol in EVE's "proto".
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMP:
		return "ICMP"
	case ProtoICMPv6:
		return "IPv6-ICMP"
	case 47:
		return "GRE"
	case 132:
		return "SCTP"
	}
	return strconv.Itoa(int(p))
}

// Record returns the EVE object of alert a; pcapCnt is the packet's
// 1-based number in its capture (0: omitted).
func (ew *EVEWriter) Record(a *Alert, pcapCnt uint64) any {
	r := a.Rule
	e := eveAlert{
		Timestamp: a.Time.UTC().Format("2006-01-02T15:04:05.000000-0700"),
		FlowID:    a.FlowID,
		PcapCnt:   pcapCnt,
		EventType: "alert",
		SrcIP:     a.Src.String(),
		DestIP:    a.Dst.String(),
		Proto:     ProtoName(a.Proto),
		PktSrc:    ew.opts.PktSrc,
		Direction: "to_client",
		Alert: eveAlertBody{
			Action: "allowed", GID: r.GID, SignatureID: r.SID, Rev: r.Rev,
			Signature: r.Msg, Category: a.Category, Severity: r.Priority,
		},
	}
	if a.ToServer {
		e.Direction = "to_server"
	}
	if ew.opts.Inline && (r.Action == rules.ActionDrop || r.Action == rules.ActionReject) {
		e.Alert.Action = "blocked"
	}
	switch a.Proto {
	case ProtoTCP, ProtoUDP:
		sp, dp := a.SrcPort, a.DstPort
		e.SrcPort, e.DestPort = &sp, &dp
	case ProtoICMP, ProtoICMPv6:
		t, c := a.ICMPType, a.ICMPCode
		e.ICMPType, e.ICMPCode = &t, &c
	}
	if a.App != rules.AppNone {
		e.AppProto = a.App.String()
	}
	if a.HasTx {
		id := a.TxID
		e.TxID = &id
	}
	if len(r.Metadata) > 0 {
		e.Alert.Metadata = map[string][]string{}
		for _, m := range r.Metadata {
			e.Alert.Metadata[m.Key] = append(e.Alert.Metadata[m.Key], m.Value)
		}
	}
	if ew.opts.Ether && a.HasEther {
		e.Ether = &eveEther{SrcMAC: mac(a.SrcMAC), DestMAC: mac(a.DstMAC)}
	}
	if ew.opts.Packet && a.Frame != nil {
		e.Packet = base64.StdEncoding.EncodeToString(a.Frame)
		e.PacketInfo = &evePacketInfo{Linktype: a.LinkType, LinktypeName: linkTypeNames[a.LinkType]}
	}
	return e
}

// Write writes one alert as a JSON line.
func (ew *EVEWriter) Write(a *Alert, pcapCnt uint64) error {
	b, err := json.Marshal(ew.Record(a, pcapCnt))
	if err != nil {
		return fmt.Errorf("eve: sid %d: %w", a.Rule.SID, err)
	}
	b = append(b, '\n')
	_, err = ew.w.Write(b)
	return err
}

func mac(m [6]byte) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, c := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[c>>4], hex[c&15])
	}
	return string(b)
}
