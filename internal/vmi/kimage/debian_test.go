package kimage_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"testing"
	"time"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
	"github.com/bulwark-project/bulwark/internal/vmi/kimage/kimagetest"
	"github.com/cilium/ebpf/btf"
)

// TestDebianKernel extracts the installed guest kernel (Debian's cloud
// kernel is LZ4-compressed) and reads its build id and BTF.
func TestDebianKernel(t *testing.T) {
	path := kimagetest.Path(t)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	vmlinux, err := kimage.Extract(f, st.Size())
	if err != nil {
		t.Fatalf("Extract(%s): %v", path, err)
	}
	t.Logf("Extract(%s): %d -> %d bytes in %v", path, st.Size(), len(vmlinux), time.Since(start))

	id, err := kimage.BuildID(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	if want := noteBuildID(t, vmlinux); id != want {
		t.Errorf("BuildID = %q, the PT_NOTE segment says %q", id, want)
	}
	t.Logf("build id %s", id)

	spec, err := kimage.BTF(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	var ts *btf.Struct
	if err := spec.TypeByName("task_struct", &ts); err != nil {
		t.Fatalf("BTF has no task_struct: %v", err)
	}
	if ts.Size < 1000 {
		t.Errorf("sizeof(task_struct) = %d", ts.Size)
	}
}

// noteBuildID reads the build id independently of kimage: the PT_NOTE
// segment's raw bytes, walked note by note.
func noteBuildID(t *testing.T, vmlinux []byte) string {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			t.Fatal(err)
		}
		for len(b) >= 12 {
			nsz, dsz, typ := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
			name := b[12 : 12+nsz]
			desc := b[12+(nsz+3)&^3:][:dsz]
			if typ == 3 && string(name) == "GNU\x00" {
				return hex.EncodeToString(desc)
			}
			b = b[12+(nsz+3)&^3+(dsz+3)&^3:]
		}
	}
	t.Fatal("no GNU build-id note in PT_NOTE")
	return ""
}
