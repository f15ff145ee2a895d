package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-project/bulwark/internal/shareddata"
)

// FuzzPcap feeds arbitrary bytes to the pcap reader and every record it
// yields to Decode and a Detector: no panic, records within the bound.
func FuzzPcap(f *testing.F) {
	if root := sharedDataIfPresent("suricata-verify"); root != "" {
		pcaps, _ := filepath.Glob(filepath.Join(root, "*", "*.pcap"))
		for _, p := range pcaps {
			if b, err := os.ReadFile(p); err == nil && len(b) < 4096 {
				f.Add(b)
			}
		}
	}
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr, 0xa1b2c3d4)
	binary.LittleEndian.PutUint32(hdr[20:], LinkEthernet)
	f.Add(hdr)
	d := newTestDetector(f, `alert tcp any any -> any any (content:"a"; sid:1;)
alert http any any -> any any (http.uri; content:"/"; sid:2;)
alert dns any any -> any any (dns.query; content:"x"; sid:3;)
alert ip any any -> any any (sid:4;)`)
	f.Fuzz(func(t *testing.T, data []byte) {
		pr, err := NewPcapReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			ts, frame, err := pr.Next()
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrPcapRecord) {
					return
				}
				t.Fatalf("unexpected error %v", err)
			}
			if len(frame) > MaxPcapRecord {
				t.Fatalf("record of %d bytes", len(frame))
			}
			d.Frame(pr.LinkType(), ts, frame)
		}
		d.Flush()
	})
}

// FuzzDecode decodes arbitrary frames of every link type.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(1), []byte{})
	f.Fuzz(func(t *testing.T, lt uint8, frame []byte) {
		links := []uint32{LinkNull, LinkEthernet, LinkRaw, LinkIPv4, LinkIPv6}
		var p Packet
		Decode(links[int(lt)%len(links)], frame, &p)
		if len(p.Payload) > len(frame) {
			t.Fatal("payload longer than the frame")
		}
	})
}

func sharedDataIfPresent(sub string) string {
	p, err := shareddata.Dir(sub)
	if err != nil {
		return ""
	}
	return p
}
