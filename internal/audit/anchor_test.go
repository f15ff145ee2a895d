package audit

import (
	"bytes"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
)

// anchorsOf returns the anchor file a Log would have written for recs and
// cps: a head line per record and each checkpoint after its record.
func anchorsOf(recs []Record, cps []Checkpoint) []byte {
	var b []byte
	for _, r := range recs {
		b = HeadAnchor(r).AppendLine(b)
		for _, c := range cps {
			if c.Seq == r.Seq {
				b = CheckpointAnchor(c).AppendLine(b)
			}
		}
	}
	return b
}

func readSet(t *testing.T, b []byte) AnchorSet {
	t.Helper()
	set, err := ReadAnchors(bytes.NewReader(b), "anchors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestAnchorLineRoundTrip(t *testing.T) {
	key := testKey(1)
	recs, cps := buildLog(3, 2, key)
	set := readSet(t, anchorsOf(recs, cps))
	if len(set.Anchors) != 4 || len(set.Bad) != 0 || set.Torn != 0 {
		t.Fatalf("set %+v", set)
	}
	if a := set.Anchors[0]; !sameAnchor(a.Anchor, HeadAnchor(recs[0])) || a.Line != 1 {
		t.Errorf("first %+v, want %+v on line 1", a, HeadAnchor(recs[0]))
	}
	cp := set.Anchors[2]
	if cp.Type != AnchorCheckpoint || cp.Seq != 2 || cp.Line != 3 || !cp.Checkpoint().ValidSig(key.Public().(ed25519.PublicKey)) {
		t.Errorf("checkpoint line %+v does not verify", cp)
	}
	// The hand-written line is the JSON encoding/json reads back.
	if got := string(HeadAnchor(recs[0]).AppendLine(nil)); got != `{"t":"head","seq":1,"hash":"`+recs[0].Hash+"\"}\n" {
		t.Errorf("head line %s", got)
	}
}

func TestReadAnchors(t *testing.T) {
	recs, cps := buildLog(4, 2, testKey(1))
	head := func(i int) string { return string(HeadAnchor(recs[i]).AppendLine(nil)) }
	tests := []struct {
		name    string
		in      string
		anchors []uint64 // seqs read
		bad     []int    // lines
		torn    int
	}{
		{"empty", "", nil, nil, 0},
		{"blank lines are ignored", "\n" + head(0) + "  \n", []uint64{1}, nil, 0},
		{"syslog prefix", "May  6 07:00:00 host bulwark[1]: " + head(0) +
			"<85>1 2024-05-06T07:00:00.000000Z host bulwark 1 checkpoint - " + string(CheckpointAnchor(cps[0]).AppendLine(nil)), []uint64{1, 2}, nil, 0},
		{"torn last line", head(0) + head(1)[:20], []uint64{1}, nil, 1},
		{"last line complete but for its newline", head(0) + strings.TrimSuffix(head(1), "\n"), []uint64{1, 2}, nil, 0},
		{"torn line marked on reopen", head(0) + head(1)[:20] + "\n{\"t\":\"torn\"}\n" + head(2), []uint64{1, 3}, nil, 1},
		{"NULs after a power loss", head(0) + "\x00\x00\x00\x00", []uint64{1}, nil, 1},
		{"torn marker does not excuse an older bad line", "garbage\n" + head(0) + "{\"t\":\"torn\"}\n", []uint64{1}, []int{1}, 0},
		{"bad lines", "garbage\n{\"t\":\"head\",\"seq\":0,\"hash\":\"" + recs[0].Hash + "\"}\n" +
			"{\"t\":\"head\",\"seq\":1,\"hash\":\"ABC\"}\n{\"t\":\"mystery\",\"seq\":1}\n" +
			"{\"t\":\"checkpoint\",\"seq\":1,\"hash\":\"" + recs[0].Hash + "\"}\n" + head(3), []uint64{4}, []int{1, 2, 3, 4, 5}, 0},
		{"overlong line", strings.Repeat("x", 10000) + "\n" + head(0), []uint64{1}, []int{1}, 0},
		{"unknown fields are ignored", `{"t":"head","seq":1,"hash":"` + recs[0].Hash + `","host":"h1"}` + "\n", []uint64{1}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := readSet(t, []byte(tt.in))
			var seqs []uint64
			for _, a := range set.Anchors {
				seqs = append(seqs, a.Seq)
			}
			var bad []int
			for _, b := range set.Bad {
				bad = append(bad, b.Line)
			}
			if !slices.Equal(seqs, tt.anchors) || !slices.Equal(bad, tt.bad) || set.Torn != tt.torn {
				t.Errorf("anchors %v, bad %v, torn %d; want %v, %v, %d (%+v)", seqs, bad, set.Torn, tt.anchors, tt.bad, tt.torn, set.Bad)
			}
		})
	}
}

// FuzzReadAnchors feeds the anchor-file parser arbitrary bytes: it must
// not panic, every anchor it returns must be well formed and survive a
// round trip through AppendLine, and nothing is counted twice.
func FuzzReadAnchors(f *testing.F) {
	recs, cps := buildLog(3, 2, testKey(1))
	f.Add(anchorsOf(recs, cps))
	f.Add([]byte("x: " + string(HeadAnchor(recs[0]).AppendLine(nil)) + "{\"t\":\"torn\"}\n\x00"))
	f.Add([]byte(`{"t":"checkpoint","seq":1,"hash":"` + recs[0].Hash + `","time":"2024-01-01T00:00:00Z","sig":"AAAA"}`))
	f.Add([]byte("{\n}\n{\"t\":\"head\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ReadAnchors(bytes.NewReader(data), "f")
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		if n := len(set.Anchors) + len(set.Bad) + set.Torn; n > lines {
			t.Fatalf("%d anchors, %d bad, %d torn from %d lines", len(set.Anchors), len(set.Bad), set.Torn, lines)
		}
		for _, a := range set.Anchors {
			if a.Seq == 0 || !isHexHash(a.Hash) || (a.Type != AnchorHead && a.Type != AnchorCheckpoint) {
				t.Fatalf("malformed anchor accepted: %+v", a)
			}
			again := readSet(t, a.AppendLine(nil))
			if len(again.Anchors) != 1 || !sameAnchor(again.Anchors[0].Anchor, a.Anchor) {
				t.Fatalf("round trip of %+v gave %+v", a, again)
			}
		}
	})
}

func sameAnchor(a, b Anchor) bool {
	return a.Type == b.Type && a.Seq == b.Seq && a.Hash == b.Hash && a.Time.Equal(b.Time) && bytes.Equal(a.Sig, b.Sig)
}

func TestVerifyAnchors(t *testing.T) {
	key, other := testKey(1), testKey(2)
	pub := key.Public().(ed25519.PublicKey)
	recs, cps := buildLog(25, 10, key)
	file := anchorsOf(recs, cps)
	tests := []struct {
		name       string
		recs       func() []Record
		anchors    []byte
		want       []found
		unanchored uint64
	}{
		{"intact", func() []Record { return recs }, file, nil, 0},
		{"no anchors", func() []Record { return recs }, nil, nil, 25},
		{"crash tail within the window", func() []Record { return recs }, anchorsOf(recs[:20], cps), nil, 5},
		{"unanchored beyond the window", func() []Record { return recs }, anchorsOf(recs[:3], nil), []found{{4, KindUnanchored}}, 22},
		{"tail cut", func() []Record { return recs[:15] }, file, []found{{16, KindCutTail}}, 0},
		{"wiped", func() []Record { return nil }, file, []found{{1, KindWiped}}, 0},
		{"rewritten from seq 12 with recomputed hashes", func() []Record {
			r := slices.Clone(recs)
			r[11].User = "mallory"
			rechain(r, 11)
			return r
		}, file, []found{{12, KindAnchorMismatch}}, 0},
		{"one record rewritten, rest restored", func() []Record {
			r := slices.Clone(recs)
			r[6].Hash = strings.Repeat("f", 64)
			return r
		}, file, []found{{7, KindAnchorMismatch}}, 0},
		{"record removed and the rest renumbered", func() []Record {
			r := slices.Delete(slices.Clone(recs), 6, 7)
			for i := 6; i < len(r); i++ {
				r[i].Seq--
			}
			rechain(r, 6)
			return r
		}, file, []found{{7, KindAnchorMismatch}, {25, KindCutTail}}, 0},
		{"forged checkpoint anchor", func() []Record { return recs }, append(slices.Clone(file),
			CheckpointAnchor(SignCheckpoint(other, 25, recs[24].Hash, t0)).AppendLine(nil)...), []found{{25, KindAnchorSig}}, 0},
		{"garbage line", func() []Record { return recs }, append([]byte("garbage\n"), file...), []found{{0, KindAnchorUnreadable}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := readSet(t, tt.anchors)
			rep := VerifyAnchors(tt.recs(), pub, []AnchorSet{set}, 10)
			if got := summarize(rep.Problems); !slices.Equal(got, tt.want) || rep.Unanchored != tt.unanchored {
				t.Errorf("problems:\n%sunanchored %d; want %v, %d", problemList(rep.Problems), rep.Unanchored, tt.want, tt.unanchored)
			}
		})
	}
}

// A log wiped and then appended to again has two anchors for its first
// seqs: the old ones disagree, and the range is named once, not per record.
func TestVerifyAnchorsRestartAfterWipe(t *testing.T) {
	key := testKey(1)
	pub := key.Public().(ed25519.PublicKey)
	old, oldCPs := buildLog(25, 10, key)
	fresh, _ := buildLog(8, 10, key)
	for i := range fresh {
		fresh[i].User = "someone else"
	}
	rechain(fresh, 0)
	file := append(anchorsOf(old, oldCPs), anchorsOf(fresh, nil)...)
	rep := VerifyAnchors(fresh, pub, []AnchorSet{readSet(t, file)}, 10)
	want := []found{{1, KindAnchorMismatch}, {9, KindCutTail}}
	if got := summarize(rep.Problems); !slices.Equal(got, want) {
		t.Fatalf("problems:\n%swant %v", problemList(rep.Problems), want)
	}
	if d := rep.Problems[0].Detail; !strings.Contains(d, "seq 1 to 8 (8 anchored records)") || !strings.Contains(d, "anchors.jsonl:1 ") {
		t.Errorf("range not named: %s", d)
	}
	if d := rep.Problems[1].Detail; !strings.Contains(d, "up to seq 25") || !strings.Contains(d, "2 of them signed checkpoints") {
		t.Errorf("cut tail not named: %s", d)
	}
}
