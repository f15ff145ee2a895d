package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// timedLog holds six records an hour apart from t0, as (user, object):
// (alice, vm/a) (bob, vm/a) (alice, vm/b) (carol, "") (alice, vm/a) (bob, vm/b).
func timedLog(t *testing.T) *Log {
	t.Helper()
	l := openLog(t, t.TempDir(), 4)
	who := [][2]string{{"alice", "vm/a"}, {"bob", "vm/a"}, {"alice", "vm/b"}, {"carol", ""}, {"alice", "vm/a"}, {"bob", "vm/b"}}
	for i, w := range who {
		_, err := l.Append(context.Background(), Record{Time: t0.Add(time.Duration(i) * time.Hour),
			User: w[0], Object: w[1], Action: "vm.stop", Result: ResultOK, Source: SourceUnix})
		if err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func seqs(recs []Record) []uint64 {
	out := []uint64{}
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func TestList(t *testing.T) {
	l := timedLog(t)
	tests := []struct {
		name string
		f    Filter
		want []uint64
	}{
		{"all", Filter{}, []uint64{1, 2, 3, 4, 5, 6}},
		{"user", Filter{User: "alice"}, []uint64{1, 3, 5}},
		{"object", Filter{Object: "vm/a"}, []uint64{1, 2, 5}},
		{"user and object", Filter{User: "bob", Object: "vm/b"}, []uint64{6}},
		{"since, inclusive", Filter{Since: t0.Add(4 * time.Hour)}, []uint64{5, 6}},
		{"until, exclusive", Filter{Until: t0.Add(2 * time.Hour)}, []uint64{1, 2}},
		{"range", Filter{Since: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour)}, []uint64{2, 3}},
		{"range in another zone", Filter{Since: t0.Add(time.Hour).In(time.FixedZone("X", -5*3600))}, []uint64{2, 3, 4, 5, 6}},
		{"far bounds", Filter{Since: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, []uint64{1, 2, 3, 4, 5, 6}},
		{"limit", Filter{Limit: 2}, []uint64{1, 2}},
		{"page after a cursor", Filter{User: "alice", After: 1, Limit: 1}, []uint64{3}},
		{"newest first", Filter{Desc: true}, []uint64{6, 5, 4, 3, 2, 1}},
		{"newest first, limited", Filter{Desc: true, User: "alice", Limit: 2}, []uint64{5, 3}},
		{"page before a cursor, newest first", Filter{Desc: true, Before: 5, Limit: 2}, []uint64{4, 3}},
		{"before, oldest first", Filter{Before: 3}, []uint64{1, 2}},
		{"no match", Filter{User: "mallory"}, []uint64{}},
		{"injection is just a value", Filter{User: "' OR 1=1 --"}, []uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.List(context.Background(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got), tt.want) {
				t.Errorf("seqs %v, want %v", seqs(got), tt.want)
			}
		})
	}
}

func TestListLimitCapped(t *testing.T) {
	l := openLog(t, t.TempDir(), 0)
	fill(t, l, MaxListLimit+5)
	for _, tt := range []struct{ limit, want int }{{0, DefaultListLimit}, {-1, DefaultListLimit}, {1 << 30, MaxListLimit}} {
		got, err := l.List(context.Background(), Filter{Limit: tt.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want {
			t.Errorf("Limit %d: %d records, want %d", tt.limit, len(got), tt.want)
		}
	}
}

func TestExportJSONL(t *testing.T) {
	ctx := context.Background()
	l := timedLog(t)
	if _, err := l.Append(ctx, Record{User: "eve\u202e", Action: "login", Result: ResultFailed,
		Source: "[2001:db8::1]:22", Detail: `<script>&"quoted"`}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.ExportJSONL(ctx, &buf, Filter{}); err != nil {
		t.Fatal(err)
	}
	// Read it back line by line, as any JSON-lines consumer would.
	var recs []Record
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v: %s", len(recs)+1, err, sc.Bytes())
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want, err := l.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 7 || len(want) != 7 {
		t.Fatalf("exported %d records, listed %d, want 7", len(recs), len(want))
	}
	for i := range recs {
		if !recs[i].Time.Equal(want[i].Time) {
			t.Errorf("record %d time %v, want %v", i, recs[i].Time, want[i].Time)
		}
		recs[i].Time = want[i].Time // the decoded zone pointer differs
		if recs[i] != want[i] {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, recs[i], want[i])
		}
	}
	// The export verifies offline with the public key and the checkpoints.
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	cps, err := l.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ps := VerifyRecords(recs, l.PublicKey(), cps); len(ps) != 0 {
		t.Errorf("offline verification:\n%s", problemList(ps))
	}
	// A filtered export holds only what matched.
	buf.Reset()
	if err := l.ExportJSONL(ctx, &buf, Filter{User: "bob", Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 1 || !bytes.Contains(buf.Bytes(), []byte(`"user":"bob"`)) {
		t.Errorf("filtered export:\n%s", buf.Bytes())
	}
}

func TestCheckpointMethod(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), 10)
	if c, err := l.Checkpoint(ctx); err != nil || c.Seq != 0 {
		t.Fatalf("empty log: %+v, %v", c, err)
	}
	recs := fill(t, l, 3)
	c, err := l.Checkpoint(ctx)
	if err != nil || c.Seq != 3 || c.Hash != recs[2].Hash || !c.ValidSig(l.PublicKey()) {
		t.Fatalf("Checkpoint = %+v, %v", c, err)
	}
	again, err := l.Checkpoint(ctx) // nothing new: the same one
	if err != nil || again.Seq != 3 || !again.Time.Equal(c.Time) {
		t.Errorf("second Checkpoint = %+v, %v", again, err)
	}
	if cps, _ := l.Checkpoints(ctx); len(cps) != 1 {
		t.Errorf("%d checkpoints stored, want 1", len(cps))
	}
}

// rfc5424Record is RFC 5424's ABNF for the messages ExportSyslog writes:
// PRI authpriv.notice (85) or .warning (84), VERSION 1, a full-date
// "T" full-time in UTC with six fraction digits, HOSTNAME, APP-NAME,
// PROCID and MSGID as 1*255, 1*48, 1*128 and 1*32 PRINTUSASCII or the
// NILVALUE, no STRUCTURED-DATA, and the record's JSON as MSG.
var rfc5424Record = regexp.MustCompile(`^<8[45]>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ([!-~]{1,255}) ([!-~]{1,48}) (-|[!-~]{1,128}) ([!-~]{1,32}) - (\{.*\})$`)

func TestExportSyslog(t *testing.T) {
	ctx := context.Background()
	l := timedLog(t)
	if _, err := l.Append(ctx, Record{User: "eve\u202e\n", Action: "log in\x00", Result: ResultFailed, Source: SourceUnix, Detail: "POST /x -> 401"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.ExportSyslog(ctx, &buf, Filter{Desc: true}, "host 1"); err != nil {
		t.Fatal(err)
	}
	want, err := l.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines for %d records:\n%s", len(lines), len(want), buf.String())
	}
	var recs []Record
	for i, line := range lines {
		m := rfc5424Record.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line %d is not RFC 5424: %q", i+1, line)
		}
		if m[1] != "host_1" || m[2] != "bulwark" || m[3] != "-" || m[4] != strings.ReplaceAll(want[i].Action, " ", "_") {
			t.Errorf("line %d header %q", i+1, m[1:5])
		}
		var r Record
		if err := json.Unmarshal([]byte(m[5]), &r); err != nil {
			t.Fatalf("line %d MSG: %v", i+1, err)
		}
		if r.Seq != want[i].Seq || r.Hash != want[i].Hash || !r.Time.Equal(want[i].Time) {
			t.Errorf("line %d carries %+v, want %+v", i+1, r, want[i])
		}
		recs = append(recs, r)
	}
	if !strings.Contains(lines[6], `"detail":"POST /x -> 401"`) {
		t.Errorf("MSG is not the record's JSON as an export writes it: %s", lines[6])
	}
	if !strings.HasPrefix(lines[6], "<84>") || !strings.HasPrefix(lines[0], "<85>") {
		t.Errorf("severity: a failure is a warning, a success a notice:\n%s", buf.String())
	}
	// The export is ascending whatever the filter asked, and verifies.
	if ps := VerifyRecords(recs, l.PublicKey(), nil); len(ps) != 0 {
		t.Errorf("verification of the syslog export:\n%s", problemList(ps))
	}
}
