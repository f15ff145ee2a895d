package lime

import (
	"bytes"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	a := bytes.Repeat([]byte{1}, 4096)
	b := bytes.Repeat([]byte{2}, 8192)
	if err := WriteRange(&buf, Range{0, 4095}, bytes.NewReader(a)); err != nil {
		t.Fatal(err)
	}
	if err := WriteRange(&buf, Range{1 << 32, 1<<32 + 8191}, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	img := buf.Bytes()
	rs, offs, err := Ranges(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[1].Start != 1<<32 || rs[1].Len() != 8192 || img[offs[1]] != 2 || offs[0] != 32 {
		t.Fatalf("%+v %v", rs, offs)
	}
	if err := WriteRange(&buf, Range{10, 20}, bytes.NewReader(nil)); err == nil {
		t.Fatal("short source accepted")
	}
}

func FuzzRanges(f *testing.F) {
	var buf bytes.Buffer
	WriteRange(&buf, Range{0, 15}, bytes.NewReader(make([]byte, 16)))
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, offs, err := Ranges(bytes.NewReader(b), int64(len(b)))
		if err == nil {
			for i, r := range rs {
				if offs[i]+int64(r.Len()) > int64(len(b)) {
					t.Fatalf("range %d past the end", i)
				}
			}
		}
	})
}
