package audit

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// testKey is deterministic so that failures reproduce.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(slices.Repeat([]byte{seed}, ed25519.SeedSize))
}

var t0 = time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)

// buildLog returns n chained records and a checkpoint every `every`
// records, as Log writes them.
func buildLog(n, every int, key ed25519.PrivateKey) ([]Record, []Checkpoint) {
	var c Chain
	var recs []Record
	var cps []Checkpoint
	for i := range n {
		r := c.Next(Record{
			Time: t0.Add(time.Duration(i) * time.Second), User: fmt.Sprintf("user%d", i%3),
			Action: "vm.start", Object: fmt.Sprintf("vm/%d", i%5), Result: ResultOK, Source: SourceUnix,
		})
		recs = append(recs, r)
		if every > 0 && r.Seq%uint64(every) == 0 {
			cps = append(cps, SignCheckpoint(key, r.Seq, r.Hash, r.Time))
		}
	}
	return recs, cps
}

// rechain recomputes Prev and Hash from position i on, as an attacker
// without the signing key would after an edit.
func rechain(recs []Record, i int) {
	c := Chain{Seq: recs[i].Seq - 1}
	if i > 0 {
		c.Hash = recs[i-1].Hash
	}
	for j := i; j < len(recs); j++ {
		recs[j] = c.Next(recs[j])
	}
}

type found struct {
	Seq  uint64
	Kind Kind
}

func summarize(ps []Problem) []found {
	var out []found
	for _, p := range ps {
		out = append(out, found{p.Seq, p.Kind})
	}
	return out
}

func TestVerifyRecords(t *testing.T) {
	key, other := testKey(1), testKey(2)
	pub := key.Public().(ed25519.PublicKey)
	tests := []struct {
		name   string
		mutate func(recs []Record, cps []Checkpoint) ([]Record, []Checkpoint)
		want   []found
	}{
		{"intact", nil, nil},
		{"empty log", func([]Record, []Checkpoint) ([]Record, []Checkpoint) { return nil, nil }, nil},
		{"field edited", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			r[6].User = "mallory"
			return r, c
		}, []found{{7, KindEdited}}},
		{"time edited", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			r[6].Time = r[6].Time.Add(time.Nanosecond)
			return r, c
		}, []found{{7, KindEdited}}},
		{"edited and rehashed: next link breaks", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			r[6].User = "mallory"
			r[6].Hash = HashRecord(r[6])
			return r, c
		}, []found{{8, KindPrevMismatch}}},
		{"edited and rechained: checkpoints catch it", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			r[6].User = "mallory"
			rechain(r, 6)
			return r, c
		}, []found{{10, KindCheckpointMismatch}, {20, KindCheckpointMismatch}}},
		{"middle removed", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			return slices.Delete(r, 6, 7), c
		}, []found{{7, KindGap}}},
		{"first removed", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			return r[1:], c
		}, []found{{1, KindGap}}},
		{"removed and renumbered", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			r = slices.Delete(r, 6, 7)
			for i := 6; i < 10; i++ {
				r[i].Seq--
			}
			return r[:10], c[:1]
		}, []found{{7, KindEdited}, {7, KindPrevMismatch}, {8, KindEdited}, {9, KindEdited}, {10, KindEdited}, {10, KindCheckpointMismatch}}},
		{"lines swapped", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			r[4], r[5] = r[5], r[4]
			return r, c
		}, []found{{5, KindOutOfOrder}}},
		{"contents swapped, seqs kept", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			r[4].Seq, r[5].Seq = r[5].Seq, r[4].Seq
			r[4], r[5] = r[5], r[4]
			return r, c
		}, []found{{5, KindEdited}, {5, KindPrevMismatch}, {6, KindEdited}, {6, KindPrevMismatch}, {7, KindPrevMismatch}}},
		{"duplicated", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			return slices.Insert(r, 5, r[4]), c
		}, []found{{5, KindDuplicate}}},
		{"tail cut after a checkpoint", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			return r[:15], c
		}, []found{{16, KindTruncated}}},
		{"tail cut with its checkpoint: undetectable", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			return r[:15], c[:1]
		}, nil},
		{"checkpoint forged with another key", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			return r, append(c, SignCheckpoint(other, 25, r[24].Hash, t0))
		}, []found{{25, KindCheckpointSig}}},
		{"checkpoint hash altered", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			c[0].Hash = r[3].Hash
			return r, c
		}, []found{{10, KindCheckpointSig}}},
		{"checkpoint seq moved", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			c[0].Seq = 11
			return r, c
		}, []found{{11, KindCheckpointSig}}},
		{"forged checkpoint does not hide truncation or mask it", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			return r[:15], append(c, SignCheckpoint(other, 40, "x", t0))
		}, []found{{16, KindTruncated}, {40, KindCheckpointSig}}},
		{"checkpoint names a removed record", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			return slices.Delete(r, 9, 10), c
		}, []found{{10, KindGap}, {10, KindCheckpointMismatch}}},
		{"checkpoints out of order are fine", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			c[0], c[1] = c[1], c[0]
			return r, c
		}, nil},
		{"first record's prev altered", func(r []Record, c []Checkpoint) ([]Record, []Checkpoint) {
			r[0].Prev = ""
			r[0].Hash = HashRecord(r[0])
			rechain(r, 1)
			return r[:5], nil
		}, []found{{1, KindPrevMismatch}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, cps := buildLog(25, 10, key)
			if tt.mutate != nil {
				recs, cps = tt.mutate(recs, cps)
			}
			got := VerifyRecords(recs, pub, cps)
			if !slices.Equal(summarize(got), tt.want) {
				t.Errorf("problems:\n%s\nwant %v", problemList(got), tt.want)
			}
		})
	}
}

func problemList(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

func TestProblemNamesPosition(t *testing.T) {
	key := testKey(1)
	recs, cps := buildLog(10, 5, key)
	recs[4], recs[5] = recs[5], recs[4]
	recs[7].Detail = "edited"
	got := VerifyRecords(recs, key.Public().(ed25519.PublicKey), cps)
	want := []Problem{
		{Seq: 5, Index: 5, Kind: KindOutOfOrder, Detail: "after seq 6"},
		{Seq: 8, Index: 7, Kind: KindEdited},
	}
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s", problemList(got))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Index != want[i].Index || got[i].Kind != want[i].Kind {
			t.Errorf("problem %d = %v, want %+v", i, got[i], want[i])
		}
	}
	if s := got[1].String(); !strings.HasPrefix(s, "seq 8 (position 7): hash mismatch (edited): stored hash") {
		t.Errorf("String() = %q", s)
	}
}

func TestVerifyBadPublicKey(t *testing.T) {
	recs, cps := buildLog(10, 5, testKey(1))
	got := VerifyRecords(recs, ed25519.PublicKey{1, 2, 3}, cps) // must not panic
	want := []found{{5, KindCheckpointSig}, {10, KindCheckpointSig}}
	if !slices.Equal(summarize(got), want) {
		t.Errorf("problems:\n%s", problemList(got))
	}
}

func TestVerifierExpectHead(t *testing.T) {
	key := testKey(1)
	pub := key.Public().(ed25519.PublicKey)
	recs, cps := buildLog(25, 10, key)
	// Cut together with the checkpoint: only the head this process
	// remembers shows it.
	v := NewVerifier(pub, cps[:1])
	v.expectHead(25, recs[24].Hash)
	for _, r := range recs[:15] {
		v.Add(r)
	}
	if got, want := summarize(v.Problems()), []found{{16, KindTruncated}}; !slices.Equal(got, want) {
		t.Errorf("truncated: %v, want %v", got, want)
	}
	// The tail rewritten without the key: the head's hash differs.
	recs[20].User = "mallory"
	rechain(recs, 20)
	v = NewVerifier(pub, cps)
	v.expectHead(25, "0123")
	for _, r := range recs {
		v.Add(r)
	}
	if got, want := summarize(v.Problems()), []found{{25, KindCheckpointMismatch}}; !slices.Equal(got, want) {
		t.Errorf("rewritten: %v, want %v", got, want)
	}
}

// The streaming verifier checks a record without allocating, so verifying
// a long log costs hashing, not garbage.
func TestVerifierAddDoesNotAllocate(t *testing.T) {
	key := testKey(1)
	recs, cps := buildLog(1000, 100, key)
	v := NewVerifier(key.Public().(ed25519.PublicKey), cps)
	i := 0
	allocs := testing.AllocsPerRun(500, func() {
		v.Add(recs[i])
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per record", allocs)
	}
	for ; i < len(recs); i++ { // AllocsPerRun ran once more than asked
		v.Add(recs[i])
	}
	if ps := v.Problems(); len(ps) != 0 {
		t.Errorf("problems:\n%s", problemList(ps))
	}
}
