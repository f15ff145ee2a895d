package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// sampleEvents is what a host launch might log: the daemon, QEMU and its
// firmware in PCR 8, one VM's kernel in PCR 9.
func sampleEvents() []Event {
	mk := func(pcr uint32, what, desc string) Event {
		return Event{PCR: pcr, Type: EventIPL, Digest: sha256.Sum256([]byte(what)), Data: []byte(desc)}
	}
	return []Event{
		mk(8, "bulwark binary", "bulwark-binary path=/usr/bin/bulwark"),
		mk(8, "qemu binary", "qemu-binary path=/usr/bin/qemu-system-x86_64"),
		mk(9, "vm kernel", "vm=web kernel"),
		mk(8, "ovmf", "firmware path=/usr/share/OVMF/OVMF_CODE.fd"),
		{PCR: 9, Type: EventIPL, Digest: sha256.Sum256(nil)}, // empty data
	}
}

func TestRoundTrip(t *testing.T) {
	want := sampleEvents()
	raw, err := Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	again, err := Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, raw) {
		t.Fatal("re-marshalled log differs")
	}
}

func TestEmptyLogIsHeaderOnly(t *testing.T) {
	raw, err := Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	// TCG_PCR_EVENT header (32) + Spec ID event (33).
	if len(raw) != 32+33 {
		t.Fatalf("header is %d bytes, want 65", len(raw))
	}
	if got, err := Parse(raw); err != nil || len(got) != 0 {
		t.Fatalf("Parse(header) = %v, %v", got, err)
	}
}

func TestReplayByHand(t *testing.T) {
	events := sampleEvents()
	ext := func(pcr [32]byte, d [32]byte) [32]byte {
		return sha256.Sum256(append(pcr[:], d[:]...))
	}
	var zero [32]byte
	want := map[uint32][32]byte{
		8: ext(ext(ext(zero, events[0].Digest), events[1].Digest), events[3].Digest),
		9: ext(ext(zero, events[2].Digest), events[4].Digest),
	}
	// EV_NO_ACTION extends nothing.
	withNoAction := append(events[:len(events):len(events)], Event{PCR: 8, Type: EventNoAction, Digest: sha256.Sum256([]byte("x"))})
	if got := Replay(withNoAction); !reflect.DeepEqual(got, want) {
		t.Fatalf("Replay = %x, want %x", got, want)
	}
}

func TestWriterRefuses(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want error
	}{
		{"pcr 24", Event{PCR: 24, Type: EventIPL}, ErrBadPCR},
		{"no action", Event{PCR: 8, Type: EventNoAction}, ErrInvalidEvent},
		{"data too large", Event{PCR: 8, Type: EventIPL, Data: make([]byte, MaxEventDataSize+1)}, ErrEventTooLarge},
		{"not utf-8", Event{PCR: 8, Type: EventIPL, Data: []byte{0xff, 0xfe}}, ErrInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			w, err := NewWriter(&b)
			if err != nil {
				t.Fatal(err)
			}
			n := b.Len()
			if err := w.Append(tt.e); !errors.Is(err, tt.want) {
				t.Fatalf("Append = %v, want %v", err, tt.want)
			}
			if b.Len() != n {
				t.Fatal("refused event touched the stream")
			}
		})
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after == 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriterErrorIsSticky(t *testing.T) {
	w, err := NewWriter(&failWriter{after: 1})
	if err != nil {
		t.Fatal(err)
	}
	e := sampleEvents()[0]
	if err := w.Append(e); err == nil {
		t.Fatal("Append on failing writer succeeded")
	}
	if err := w.Append(e); err == nil {
		t.Fatal("Append after a failed write succeeded")
	}
}

// le builds little-endian fields for hand-made logs.
func le(vs ...any) []byte {
	var b bytes.Buffer
	for _, v := range vs {
		if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

// headerWith returns a TCG_PCR_EVENT carrying a Spec ID event declaring algs
// as (id, size) pairs.
func headerWith(algs ...uint16) []byte {
	spec := append(append([]byte(nil), specIDSignature[:]...), le(uint32(0), uint8(0), uint8(2), uint8(2), uint8(2), uint32(len(algs)/2))...)
	for _, a := range algs {
		spec = append(spec, le(a)...)
	}
	spec = append(spec, 0)
	return append(le(uint32(0), uint32(EventNoAction), [20]byte{}, uint32(len(spec))), spec...)
}

func TestParseRefuses(t *testing.T) {
	good, err := Marshal(sampleEvents()[:2])
	if err != nil {
		t.Fatal(err)
	}
	hdr := header()
	rec := func(pcr, typ, count uint32, alg uint16, dlen int, size uint32, data int) []byte {
		b := le(pcr, typ, count, alg)
		b = append(b, make([]byte, dlen)...)
		return append(append(b, le(size)...), make([]byte, data)...)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	okRec := rec(8, uint32(EventIPL), 1, algSHA256, 32, 0, 0)

	tests := []struct {
		name      string
		raw       []byte
		wantErr   error
		wantEvent int
	}{
		{"empty", nil, ErrTruncated, -1},
		{"legacy SHA-1 log", le(uint32(0), uint32(EventIPL), [20]byte{}, uint32(0)), ErrBadHeader, -1},
		{"header truncated", hdr[:40], ErrTruncated, -1},
		{"bad signature", func() []byte { b := bytes.Clone(hdr); b[32] = 'X'; return b }(), ErrBadHeader, -1},
		{"unknown algorithm in header", headerWith(0x0099, 32), ErrUnknownAlgorithm, -1},
		{"wrong digest size in header", headerWith(algSHA256, 20), ErrDigestSize, -1},
		{"no SHA-256 bank", headerWith(algSHA1, 20), ErrBadHeader, -1},
		{"truncated digest", cat(hdr, okRec, rec(8, uint32(EventIPL), 1, algSHA256, 10, 0, 0)[:22]), ErrTruncated, 1},
		{"truncated data", cat(good[:len(good)-1]), ErrTruncated, 1},
		{"undeclared algorithm", cat(hdr, rec(8, uint32(EventIPL), 1, algSHA1, 20, 0, 0)), ErrUnknownAlgorithm, 0},
		{"digest count", cat(hdr, okRec, rec(8, uint32(EventIPL), 2, algSHA256, 32, 0, 0)), ErrInvalidEvent, 1},
		{"pcr 24", cat(hdr, rec(24, uint32(EventIPL), 1, algSHA256, 32, 0, 0)), ErrBadPCR, 0},
		{"data too large", cat(hdr, okRec, okRec, rec(8, uint32(EventIPL), 1, algSHA256, 32, MaxParsedEventDataSize+1, 0)), ErrEventTooLarge, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.raw)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse = %v, want %v", err, tt.wantErr)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Event != tt.wantEvent {
				t.Fatalf("Parse = %v, want event %d", err, tt.wantEvent)
			}
		})
	}
}

func TestParseTooManyEvents(t *testing.T) {
	rec := appendRecord(nil, Event{PCR: 8, Type: EventIPL})
	raw := append(header(), bytes.Repeat(rec, MaxEvents+1)...)
	_, err := Parse(raw)
	var pe *ParseError
	if !errors.Is(err, ErrTooManyEvents) || !errors.As(err, &pe) || pe.Event != MaxEvents {
		t.Fatalf("Parse = %v, want ErrTooManyEvents at event %d", err, MaxEvents)
	}
	if _, err := Parse(raw[:len(raw)-len(rec)]); err != nil {
		t.Fatalf("Parse of exactly MaxEvents: %v", err)
	}
}

func TestParseMultiBank(t *testing.T) {
	// A header declaring SHA-1 and SHA-256, as firmware writes; the SHA-256
	// digest is kept wherever it appears in the list.
	d := sha256.Sum256([]byte("k"))
	raw := headerWith(algSHA1, 20, algSHA256, 32)
	raw = append(raw, le(uint32(9), uint32(EventIPL), uint32(2), algSHA1, [20]byte{1}, algSHA256, d, uint32(2))...)
	raw = append(raw, "hi"...)
	got, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{{PCR: 9, Type: EventIPL, Digest: d, Data: []byte("hi")}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func FuzzParse(f *testing.F) {
	good, err := Marshal(sampleEvents())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(header())
	f.Add(headerWith(algSHA1, 20, algSHA256, 32))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		events, err := Parse(raw)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *ParseError: %v", err)
			}
			return
		}
		Replay(events)
		// What parses and is writable re-encodes to a log that parses to
		// the same events and the same PCRs.
		out, err := Marshal(events)
		if err != nil {
			return
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(again, events) {
			t.Fatalf("re-parse differs:\n%+v\n%+v", again, events)
		}
	})
}
