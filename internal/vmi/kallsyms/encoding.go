package kallsyms

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// compactTable is the JSON form of a Table. A profile carries the whole
// symbol table so that a monitor can name any kernel address; as 100,000
// {"name","addr","type"} objects that would be several megabytes of JSON,
// slow to write and, worse, slow to read back on every start. Instead the
// table is one zstd-compressed binary blob (about 500 KiB for a
// distribution kernel) that encoding/json carries as a base64 string:
//
//	type letters   count bytes
//	addresses      count uvarints, each the delta from the previous address
//	names          joined by '\n' (names are printable ASCII without spaces)
type compactTable struct {
	Format string `json:"format"`
	Count  int    `json:"count"`
	Data   []byte `json:"data"`
}

const compactFormat = "kallsyms-zstd-1"

var (
	zenc     *zstd.Encoder
	zdec     *zstd.Decoder
	zinitErr error
	zonce    sync.Once
)

// codecs returns shared, concurrency-safe zstd coders (EncodeAll and
// DecodeAll may be called from several goroutines).
func codecs() (*zstd.Encoder, *zstd.Decoder, error) {
	zonce.Do(func() {
		zenc, zinitErr = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if zinitErr != nil {
			return
		}
		zdec, zinitErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(maxBlob), zstd.WithDecoderMaxWindow(64<<20))
	})
	return zenc, zdec, zinitErr
}

// maxBlob bounds the decompressed table: MaxSymbols of average-length
// names fit easily, and a hostile cache file cannot ask for more.
const maxBlob = 256 << 20

// MarshalJSON encodes the table compactly. Layout is not kept: it describes
// the image the table came from, not the symbols.
func (t *Table) MarshalJSON() ([]byte, error) {
	enc, _, err := codecs()
	if err != nil {
		return nil, err
	}
	var raw []byte
	for _, s := range t.syms {
		raw = append(raw, s.Type)
	}
	var prev uint64
	for _, s := range t.syms {
		raw = binary.AppendUvarint(raw, s.Addr-prev)
		prev = s.Addr
	}
	for i, s := range t.syms {
		if i > 0 {
			raw = append(raw, '\n')
		}
		raw = append(raw, s.Name...)
	}
	return json.Marshal(compactTable{Format: compactFormat, Count: len(t.syms), Data: enc.EncodeAll(raw, nil)})
}

// UnmarshalJSON decodes and validates the compact form; a cache file is
// checked as strictly as an image, since it can be edited or corrupted.
func (t *Table) UnmarshalJSON(data []byte) error {
	var c compactTable
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	if c.Format != compactFormat {
		return fmt.Errorf("kallsyms: table format %q, want %q", c.Format, compactFormat)
	}
	if c.Count <= 0 || c.Count > MaxSymbols {
		return fmt.Errorf("kallsyms: table count %d out of range", c.Count)
	}
	_, dec, err := codecs()
	if err != nil {
		return err
	}
	raw, err := dec.DecodeAll(c.Data, nil)
	if err != nil {
		return fmt.Errorf("kallsyms: table data: %w", err)
	}
	if len(raw) < c.Count {
		return fmt.Errorf("kallsyms: table data too short for %d symbols", c.Count)
	}
	types, rest := raw[:c.Count], raw[c.Count:]
	syms := make([]Symbol, c.Count)
	var addr uint64
	for i := range syms {
		d, n := binary.Uvarint(rest)
		if n <= 0 {
			return fmt.Errorf("kallsyms: address delta %d is truncated or invalid", i)
		}
		rest = rest[n:]
		if addr+d < addr {
			return errors.New("kallsyms: address deltas overflow")
		}
		addr += d
		syms[i].Addr = addr
	}
	names := strings.Split(string(rest), "\n")
	if len(names) != c.Count {
		return fmt.Errorf("kallsyms: %d names for %d symbols", len(names), c.Count)
	}
	for i := range syms {
		if err := checkName(names[i], types[i]); err != nil {
			return fmt.Errorf("kallsyms: symbol %d: %w", i, err)
		}
		syms[i].Name, syms[i].Type = names[i], types[i]
	}
	*t = *newTable(syms, Layout{})
	return nil
}

func checkName(name string, typ byte) error {
	if !isTypeLetter(typ) {
		return fmt.Errorf("type %q is not a letter", typ)
	}
	if name == "" || len(name) >= maxNameLen {
		return fmt.Errorf("name length %d out of range", len(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("name %q has a byte %#x outside printable ASCII", name, c)
		}
	}
	return nil
}
