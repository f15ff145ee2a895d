package image

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// newcRecord is one entry as read back by readNewc.
type newcRecord struct {
	name                             string
	ino, mode, uid, gid, nlink, mtim uint32
	devMajor, devMinor, rMajor, rMin uint32
	data                             []byte
}

// readNewc is an independent newc reader: it checks the magic, the zero
// check field and the 4-byte alignment of names and data, and stops at the
// trailer, which must be followed only by padding.
func readNewc(t *testing.T, b []byte) []newcRecord {
	t.Helper()
	var out []newcRecord
	off := 0
	align := func() {
		off = (off + 3) &^ 3
	}
	for {
		if off+110 > len(b) {
			t.Fatalf("truncated header at %d", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != cpioMagic {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			f[i] = uint32(v)
		}
		if f[12] != 0 {
			t.Fatalf("check field %d", f[12])
		}
		off += 110
		nameEnd := off + int(f[11])
		if f[11] == 0 || nameEnd > len(b) || b[nameEnd-1] != 0 {
			t.Fatalf("bad name at %d", off)
		}
		r := newcRecord{name: string(b[off : nameEnd-1]), ino: f[0], mode: f[1], uid: f[2], gid: f[3],
			nlink: f[4], mtim: f[5], devMajor: f[7], devMinor: f[8], rMajor: f[9], rMin: f[10]}
		off = nameEnd
		align()
		if off+int(f[6]) > len(b) {
			t.Fatalf("truncated data for %s", r.name)
		}
		r.data = b[off : off+int(f[6])]
		off += int(f[6])
		align()
		if r.name == cpioTrailer {
			if len(bytes.Trim(b[min(off, len(b)):], "\x00")) != 0 {
				t.Fatalf("data after trailer")
			}
			return out
		}
		out = append(out, r)
	}
}

func TestCPIORoundTrip(t *testing.T) {
	a := newCPIOArchive()
	for _, err := range []error{
		a.addFile("/init", 0o755, []byte("#!/bin/sh\n")),
		a.addFile("lib/modules/x.ko", 0o644, []byte("12345")),
		a.addDir("root", 0o700),
		a.addDir("lib", 0o711), // explicit mode wins over the implicit parent
		a.addFile("empty", 0o600, nil),
		a.addCharDev("dev/console", 0o600, 5, 1),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := a.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not 4-byte aligned", buf.Len())
	}
	recs := readNewc(t, buf.Bytes())
	var got []string
	for i, r := range recs {
		if r.ino != uint32(i+1) || r.uid != 0 || r.gid != 0 || r.mtim != 0 || r.devMajor != 0 || r.devMinor != 0 {
			t.Errorf("%s: non-deterministic metadata %+v", r.name, r)
		}
		got = append(got, fmt.Sprintf("%s %o %d %d:%d %q", r.name, r.mode, r.nlink, r.rMajor, r.rMin, r.data))
	}
	want := []string{
		`dev 40755 2 0:0 ""`,
		`dev/console 20600 1 5:1 ""`,
		`empty 100600 1 0:0 ""`,
		`init 100755 1 0:0 "#!/bin/sh\n"`,
		`lib 40711 2 0:0 ""`,
		`lib/modules 40755 2 0:0 ""`,
		`lib/modules/x.ko 100644 1 0:0 "12345"`,
		`root 40700 2 0:0 ""`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCPIORejects(t *testing.T) {
	a := newCPIOArchive()
	if err := a.addFile("etc/passwd", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"duplicate":       a.addFile("etc/passwd", 0o644, nil),
		"file as dir":     a.addDir("etc/passwd", 0o755),
		"file as parent":  a.addFile("etc/passwd/x", 0o644, nil),
		"escape":          a.addFile("../x", 0o644, nil),
		"unclean":         a.addFile("a//b", 0o644, nil),
		"empty":           a.addDir("/", 0o755),
		"trailer name":    a.addFile(cpioTrailer, 0o644, nil),
		"nul in the name": a.addFile("a\x00b", 0o644, nil),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCPIOGzipDeterministic(t *testing.T) {
	build := func() []byte {
		a := newCPIOArchive()
		// Insertion order differs from sorted order on purpose.
		for _, n := range []string{"z", "a/b", "m", "a/a"} {
			if err := a.addFile(n, 0o644, []byte(n)); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err := a.writeTo(gz); err != nil {
			t.Fatal(err)
		}
		gz.Close()
		return buf.Bytes()
	}
	first := build()
	if !bytes.Equal(first, build()) {
		t.Fatal("two builds differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(readNewc(t, raw)); n != 5 {
		t.Errorf("%d entries, want 5", n)
	}
}
