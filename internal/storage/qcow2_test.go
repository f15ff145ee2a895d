package storage

import (
	"encoding/binary"
	"strings"
	"testing"
)

// qcowImage builds a qcow2 header for tests: version 3 unless v2 is set,
// 64 KiB clusters, optional backing name, backing format and data file
// extensions, and incompatible feature bits.
type qcowImage struct {
	v2          bool
	backing     string
	backingFmt  string
	dataFile    string
	incompat    uint64
	crypt       uint32
	clusterBits uint32
	size        uint64
}

func (q qcowImage) bytes() []byte {
	b := make([]byte, 4096)
	be := binary.BigEndian
	be.PutUint32(b[0:], qcowMagic)
	ver := uint32(3)
	if q.v2 {
		ver = 2
	}
	be.PutUint32(b[4:], ver)
	cb := q.clusterBits
	if cb == 0 {
		cb = 16
	}
	be.PutUint32(b[20:], cb)
	size := q.size
	if size == 0 {
		size = 1 << 30
	}
	be.PutUint64(b[24:], size)
	be.PutUint32(b[32:], q.crypt)
	off := uint64(qcowV2HeaderLen)
	if !q.v2 {
		be.PutUint64(b[72:], q.incompat)
		be.PutUint32(b[96:], 4)    // refcount_order
		be.PutUint32(b[100:], 112) // header_length
		off = 112
	}
	ext := func(typ uint32, data string) {
		be.PutUint32(b[off:], typ)
		be.PutUint32(b[off+4:], uint32(len(data)))
		copy(b[off+8:], data)
		off += 8 + (uint64(len(data))+7)&^7
	}
	if q.backingFmt != "" {
		ext(extBackingFormat, q.backingFmt)
	}
	if q.dataFile != "" {
		ext(extDataFile, q.dataFile)
	}
	ext(extEnd, "")
	if q.backing != "" {
		be.PutUint64(b[8:], off)
		be.PutUint32(b[16:], uint32(len(q.backing)))
		copy(b[off:], q.backing)
	}
	return b
}

func TestParseQcow2Header(t *testing.T) {
	tests := []struct {
		name      string
		img       []byte
		wantErr   string // substring of the parse error
		importErr string // substring of ImportProblem ("" = importable)
		check     func(*testing.T, *Qcow2Header)
	}{
		{name: "plain v3", img: qcowImage{}.bytes(), check: func(t *testing.T, h *Qcow2Header) {
			if h.Version != 3 || h.Size != 1<<30 || h.BackingFile != "" || h.DataFile != "" {
				t.Errorf("got %+v", h)
			}
		}},
		{name: "plain v2", img: qcowImage{v2: true}.bytes()},
		{name: "backing file", img: qcowImage{backing: "/etc/shadow", backingFmt: "raw"}.bytes(), importErr: "backing file \"/etc/shadow\"",
			check: func(t *testing.T, h *Qcow2Header) {
				if h.BackingFile != "/etc/shadow" || h.BackingFormat != "raw" {
					t.Errorf("got %+v", h)
				}
			}},
		{name: "v2 backing file", img: qcowImage{v2: true, backing: "/etc/shadow"}.bytes(), importErr: "backing file"},
		{name: "data file ext", img: qcowImage{dataFile: "/etc/shadow", incompat: incompatDataFile}.bytes(), importErr: "external data file \"/etc/shadow\""},
		{name: "data file bit only", img: qcowImage{incompat: incompatDataFile}.bytes(), importErr: "external data file"},
		{name: "data file ext only", img: qcowImage{dataFile: "/x"}.bytes(), importErr: "external data file"},
		{name: "unknown incompat", img: qcowImage{incompat: 1 << 40}.bytes(), importErr: "unknown incompatible"},
		{name: "corrupt", img: qcowImage{incompat: incompatCorrupt}.bytes(), importErr: "corrupt"},
		{name: "dirty", img: qcowImage{incompat: incompatDirty}.bytes(), importErr: "dirty"},
		{name: "encrypted", img: qcowImage{crypt: 2}.bytes(), importErr: "encrypted"},
		{name: "zstd and extended l2 are fine", img: qcowImage{incompat: incompatCompression | incompatExtendedL2}.bytes()},
		{name: "not qcow2", img: make([]byte, 512), wantErr: "not a qcow2"},
		{name: "empty", img: nil, wantErr: "not a qcow2"},
		{name: "truncated", img: qcowImage{}.bytes()[:50], wantErr: "truncated"},
		{name: "truncated v3", img: qcowImage{}.bytes()[:90], wantErr: "truncated"},
		{name: "truncated before extensions end", img: qcowImage{dataFile: "/etc/shadow"}.bytes()[:120], wantErr: "runs past"},
		{name: "backing past data", img: qcowImage{backing: "/etc/shadow"}.bytes()[:130], wantErr: "past the end"},
		{name: "bad version", img: func() []byte { b := qcowImage{}.bytes(); b[7] = 9; return b }(), wantErr: "version"},
		{name: "bad cluster bits", img: qcowImage{clusterBits: 30}.bytes(), wantErr: "cluster_bits"},
		{name: "bad header length", img: func() []byte { b := qcowImage{}.bytes(); binary.BigEndian.PutUint32(b[100:], 105); return b }(), wantErr: "header_length"},
		{name: "huge backing size", img: func() []byte {
			b := qcowImage{}.bytes()
			binary.BigEndian.PutUint64(b[8:], 200)
			binary.BigEndian.PutUint32(b[16:], 0xffffffff)
			return b
		}(), wantErr: "backing_file_size"},
		{name: "backing offset overflow", img: func() []byte {
			b := qcowImage{}.bytes()
			binary.BigEndian.PutUint64(b[8:], ^uint64(0)-2)
			binary.BigEndian.PutUint32(b[16:], 10)
			return b
		}(), wantErr: "backing_file_offset"},
		{name: "backing inside header", img: func() []byte {
			b := qcowImage{}.bytes()
			binary.BigEndian.PutUint64(b[8:], 4)
			binary.BigEndian.PutUint32(b[16:], 10)
			return b
		}(), wantErr: "backing_file_offset"},
		{name: "extension length past end", img: func() []byte {
			b := qcowImage{}.bytes()
			binary.BigEndian.PutUint32(b[112:], extDataFile)
			binary.BigEndian.PutUint32(b[116:], 0xfffffff0)
			return b
		}(), wantErr: "runs past"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseQcow2Header(tc.img)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ierr := h.ImportProblem()
			switch {
			case tc.importErr == "" && ierr != nil:
				t.Errorf("ImportProblem = %v", ierr)
			case tc.importErr != "" && (ierr == nil || !strings.Contains(ierr.Error(), tc.importErr)):
				t.Errorf("ImportProblem = %v, want %q", ierr, tc.importErr)
			}
			if tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}

func TestOpenProblem(t *testing.T) {
	parse := func(q qcowImage) *Qcow2Header {
		h, err := ParseQcow2Header(q.bytes())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	tests := []struct {
		name        string
		h           *Qcow2Header
		backing, bf string
		want        string
	}{
		{"no backing either side", parse(qcowImage{}), "", "", ""},
		{"planted backing", parse(qcowImage{backing: "/etc/shadow"}), "", "", "but the volume has none on record"},
		{"other backing", parse(qcowImage{backing: "/etc/shadow", backingFmt: "raw"}), "base.qcow2", "qcow2", "the record says \"base.qcow2\""},
		{"right backing", parse(qcowImage{backing: "base.qcow2", backingFmt: "qcow2"}), "base.qcow2", "qcow2", ""},
		{"wrong backing format", parse(qcowImage{backing: "base.qcow2", backingFmt: "raw"}), "base.qcow2", "qcow2", "backing format"},
		{"data file", parse(qcowImage{dataFile: "/dev/sda", incompat: incompatDataFile}), "", "", "external data file"},
		{"unknown feature", parse(qcowImage{incompat: 1 << 20}), "", "", "unknown incompatible"},
		{"dirty is fine on open", parse(qcowImage{incompat: incompatDirty}), "", "", ""},
	}
	for _, tc := range tests {
		err := tc.h.OpenProblem(tc.backing, tc.bf)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: OpenProblem = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// FuzzQcow2Header feeds hostile headers to the parser: it must never
// panic, never return a name longer than its limits, and a header it
// accepts must round-trip the same answer.
func FuzzQcow2Header(f *testing.F) {
	f.Add(qcowImage{}.bytes())
	f.Add(qcowImage{v2: true, backing: "/etc/shadow"}.bytes())
	f.Add(qcowImage{backing: "/etc/shadow", backingFmt: "raw", dataFile: "/etc/passwd", incompat: incompatDataFile}.bytes())
	f.Add(qcowImage{}.bytes()[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseQcow2Header(b)
		if err != nil {
			if h != nil {
				t.Fatal("header with error")
			}
			return
		}
		if len(h.BackingFile) > maxBackingNameLen || len(h.DataFile) > maxExtNameLen || len(h.BackingFormat) > maxExtNameLen || len(h.Extensions) > maxExtensions {
			t.Fatalf("limits exceeded: %+v", h)
		}
		h2, err := ParseQcow2Header(b)
		if err != nil || h2.BackingFile != h.BackingFile || h2.DataFile != h.DataFile {
			t.Fatal("not deterministic")
		}
		// Whatever names an external file is never importable.
		if (h.BackingFile != "" || h.DataFile != "" || h.Incompatible&incompatDataFile != 0) && h.ImportProblem() == nil {
			t.Fatalf("importable with an external file: %+v", h)
		}
		if h.BackingFile != "" && h.OpenProblem("", "") == nil {
			t.Fatalf("opens with a backing file not on record: %+v", h)
		}
	})
}
