package dns

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-project/bulwark/internal/ips/proto/internal/pcaptest"
)

// A query for www.google.com/A with an EDNS0 OPT record, as dig sends it.
var digQuery = []byte{
	0x12, 0x34, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	3, 'w', 'w', 'w', 6, 'g', 'o', 'o', 'g', 'l', 'e', 3, 'c', 'o', 'm', 0,
	0x00, 0x01, 0x00, 0x01,
	0x00, 0x00, 0x29, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
}

// Its answer: the question, then two A records whose names are
// compression pointers to offset 12.
var digAnswer = append(append([]byte{
	0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
}, digQuery[12:32]...),
	0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 142, 250, 74, 36,
	0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x04, 142, 250, 74, 37,
)

func TestParseQuery(t *testing.T) {
	m, err := Parse(digQuery)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.ID != 0x1234 || m.Header.Response() || len(m.Questions) != 1 {
		t.Fatalf("%+v", m)
	}
	q := m.Questions[0]
	if string(q.Name.Value) != "www.google.com" || q.Type != 1 || q.Class != 1 {
		t.Fatalf("%+v", q)
	}
	a, err := Parse(digAnswer)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Header.Response() || len(a.Answers) != 2 || string(a.Answers[1].Name.Value) != "www.google.com" ||
		string(a.Answers[1].Data) != string([]byte{142, 250, 74, 37}) || a.Incomplete {
		t.Fatalf("%+v", a)
	}
}

func TestParseTCP(t *testing.T) {
	var s []byte
	for _, m := range [][]byte{digQuery, digAnswer} {
		s = binary.BigEndian.AppendUint16(s, uint16(len(m)))
		s = append(s, m...)
	}
	msgs, n, err := ParseTCP(s[:len(s)-3])
	if err != nil || len(msgs) != 1 || n != 2+len(digQuery) {
		t.Fatalf("%d msgs, %d consumed, %v", len(msgs), n, err)
	}
	msgs, n, err = ParseTCP(s)
	if err != nil || len(msgs) != 2 || n != len(s) {
		t.Fatalf("%d msgs, %d consumed, %v", len(msgs), n, err)
	}
}

func TestAdversarialNames(t *testing.T) {
	hdr := []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	msg := func(name ...byte) []byte { return append(append(append([]byte{}, hdr...), name...), 0, 1, 0, 1) }
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"self pointer", msg(0xc0, 12), ErrPointerLoop},
		{"pointer past end", msg(0xc0, 0xff), ErrBadPointer},
		{"reserved label", msg(0x40, 1), ErrBadLabel},
		{"label past end", msg(10, 'a'), ErrShort},
		{"header only", hdr[:11], ErrShort},
	} {
		_, err := Parse(tc.msg)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A loop through two pointers ends at the step bound with a truncated
	// (here empty) name, as Suricata's parser does.
	loop := append(append([]byte{}, hdr...), 0xc0, 14, 0xc0, 12, 0, 1, 0, 1)
	if m, err := Parse(loop); err != nil || !m.Questions[0].Name.Truncated {
		t.Fatalf("pointer loop: %v", err)
	}
	// A name of 200 labels of 63 bytes is cut at MaxNameLen.
	long := append([]byte{}, hdr...)
	for i := 0; i < 200; i++ {
		long = append(long, 63)
		for j := 0; j < 63; j++ {
			long = append(long, 'a')
		}
	}
	long = append(long, 0, 0, 1, 0, 1)
	m, err := Parse(long)
	if err != nil || len(m.Questions[0].Name.Value) != MaxNameLen || !m.Questions[0].Name.Truncated {
		t.Fatalf("%v", err)
	}
}

// TestSuricataVerify checks dns.query on the suricata-verify DNS captures.
func TestSuricataVerify(t *testing.T) {
	dir := pcaptest.DataDir()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("suricata-verify data not present: %v", err)
	}
	for _, tc := range []struct{ test, want string }{
		{"dns-detect-query-01", "google.com"},
		{"dns-detect-query-04", "google.com"},
		{"test-bsize-values-2", "google.com"},
	} {
		pcaps, _ := filepath.Glob(filepath.Join(dir, tc.test, "*.pcap"))
		if len(pcaps) != 1 {
			t.Fatalf("%s: no pcap", tc.test)
		}
		pkts, err := pcaptest.Read(pcaps[0])
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range pkts {
			if p.TCP {
				continue
			}
			m, err := Parse(p.Payload)
			if err != nil {
				t.Errorf("%s: %v", tc.test, err)
				continue
			}
			for _, q := range m.Queries() {
				found = found || string(q) == tc.want
			}
		}
		if !found {
			t.Errorf("%s: no dns.query %q", tc.test, tc.want)
		}
	}
}

func FuzzDNS(f *testing.F) {
	f.Add(digQuery)
	f.Add(digAnswer)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err == nil {
			for _, q := range m.Questions {
				if len(q.Name.Value) > MaxNameLen {
					t.Fatal("name over limit")
				}
			}
			if len(m.Questions) > MaxQuestions || len(m.Answers) > MaxAnswers {
				t.Fatal("too many entries")
			}
		}
		ParseTCP(b)
	})
}

func BenchmarkDNS(b *testing.B) {
	b.SetBytes(int64(len(digAnswer)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(digAnswer); err != nil {
			b.Fatal(err)
		}
	}
}
