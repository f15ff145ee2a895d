package audit

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The golden hashes were computed by an independent implementation of the
// canonical encoding (a dozen lines of Python: struct.pack(">Q") for Seq,
// struct.pack(">I") length prefixes, hashlib.sha256), not by this package.
func TestCanonicalGolden(t *testing.T) {
	tests := []struct {
		name string
		r    Record
		want string
	}{{
		name: "all fields, nanoseconds",
		r: Record{Seq: 42, Time: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
			User: "alice", Action: "vm.create", Object: "vm/web1", Result: "ok",
			Source: "192.0.2.7:51234", Prev: strings.Repeat("ab", 32)},
		want: "042f9a0b90d9ed0c48e8956ab0ba88d8af42922e09619c85294340d06ac154f0",
	}, {
		name: "trailing zeros dropped, UTF-8, non-UTC input",
		r: Record{Seq: 1, Time: time.Date(2024, 5, 6, 9, 8, 9, 500000000, time.FixedZone("CEST", 2*3600)),
			User: "zoë", Action: "login", Result: "failed", Source: "unix", Detail: "bad password",
			Prev: GenesisPrev},
		want: "a26579595f596546c001798eb25bb0eb314bb4fe6957257665de0a1ccd966925",
	}, {
		name: "no fraction, empty fields",
		r: Record{Seq: 1, Time: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
			Action: "login", Result: "failed", Source: "unix", Prev: GenesisPrev},
		want: "8ff2c3706d2bfb61f40e6313f5a89955d78934c56c997a7df959fea870af5327",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HashRecord(tt.r); got != tt.want {
				t.Errorf("HashRecord = %s, want %s", got, tt.want)
			}
		})
	}
	// The exact bytes of the first vector, as the independent encoder wrote them.
	const wantHex = "62756c7761726b2d61756469742d7265636f72642d76310a000000000000002a0000001e323032342d30352d30365430373a30383a30392e3132333435363738395a00000005616c69636500000009766d2e63726561746500000007766d2f77656231000000026f6b0000000f3139322e302e322e373a3531323334000000000000004061626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162"
	if got := hex.EncodeToString(AppendCanonical(nil, tests[0].r)); got != wantHex {
		t.Errorf("canonical encoding\n got %s\nwant %s", got, wantHex)
	}
}

// The JSON "time" of a record is the very string the hash covers, so an
// external verifier can hash it verbatim.
func TestJSONTimeIsCanonical(t *testing.T) {
	for _, ns := range []int{0, 500000000, 123456789, 100} {
		r := Record{Time: time.Date(2024, 5, 6, 7, 8, 9, ns, time.UTC)}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if got, want := m["time"], r.Time.Format(time.RFC3339Nano); got != want {
			t.Errorf("JSON time %q, canonical %q", got, want)
		}
	}
}

func TestChainNext(t *testing.T) {
	var c Chain
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	a := c.Next(Record{Seq: 99, Prev: "junk", Hash: "junk", Time: t0, Action: "a"})
	if a.Seq != 1 || a.Prev != GenesisPrev || a.Hash != HashRecord(a) {
		t.Fatalf("first record = %+v", a)
	}
	b := c.Next(Record{Time: t0, Action: "b"})
	if b.Seq != 2 || b.Prev != a.Hash || b.Hash != HashRecord(b) {
		t.Fatalf("second record = %+v, first hash %s", b, a.Hash)
	}
	if c.Seq != 2 || c.Hash != b.Hash {
		t.Errorf("chain head = %+v", c)
	}
	if len(b.Hash) != 64 {
		t.Errorf("hash %q is not 64 hex digits", b.Hash)
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"clean ASCII", "alice@example", "alice@example"},
		{"clean UTF-8", "zoë 日本", "zoë 日本"},
		{"newline", "a\nb", `a\x0ab`},
		{"NUL and DEL", "a\x00b\x7f", `a\x00b\x7f`},
		{"escape sequence", "\x1b[31mred", `\x1b[31mred`},
		{"backslash doubled", `DOMAIN\user`, `DOMAIN\\user`},
		{"escape is unambiguous", `\x0a`, `\\x0a`},
		{"invalid UTF-8", "a\xffb", `a\xffb`},
		{"C1 control", "a\u0085b", `a\u0085b`},
		{"bidi override", "admin\u202egnp.exe", `admin\u202egnp.exe`},
		{"isolate", "\u2066x\u2069", `\u2066x\u2069`},
		{"line separator", "a\u2028b", `a\u2028b`},
		{"literal U+FFFD kept", "a\ufffdb", "a\ufffdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitize(tt.in, MaxFieldLen); got != tt.want {
				t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSanitizeTruncates(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits exactly", strings.Repeat("a", 20), 20, strings.Repeat("a", 20)},
		{"one over", strings.Repeat("a", 21), 20, "aaaaaa" + truncMark},
		// A cut never splits a rune or an escape.
		{"rune boundary", "aaaaaé" + strings.Repeat("b", 20), 20, "aaaaa" + truncMark},
		{"escape boundary", "aaaaa\x00" + strings.Repeat("b", 20), 20, "aaaaa" + truncMark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sanitize(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("sanitize = %q, want %q", got, tt.want)
			}
			if len(got) > tt.max {
				t.Errorf("len %d > max %d", len(got), tt.max)
			}
		})
	}
	// A huge field costs work proportional to the limit, not its size.
	huge := strings.Repeat("\x00", 64<<20)
	start := time.Now()
	if got := sanitize(huge, MaxDetailLen); len(got) > MaxDetailLen {
		t.Errorf("len %d", len(got))
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("sanitizing 64 MiB took %v; it should stop at the limit", d)
	}
}

func TestSanitizeCleanDoesNotAllocate(t *testing.T) {
	s := "vm/web1 by zoë from 192.0.2.7:51234"
	if n := testing.AllocsPerRun(100, func() { _ = sanitize(s, MaxFieldLen) }); n != 0 {
		t.Errorf("%v allocations for a clean field", n)
	}
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"", "a\nb", "\xff\xfe", "a\u202e", `\\`, strings.Repeat("é", 600)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := sanitize(s, 64)
		if len(got) > 64 {
			t.Fatalf("len %d > 64", len(got))
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 %q", got)
		}
		for _, r := range got {
			if needsEscape(r) {
				t.Fatalf("unescaped %U in %q", r, got)
			}
		}
		if len(s) <= 64 && isClean(s) && got != s {
			t.Fatalf("clean %q changed to %q", s, got)
		}
	})
}

func TestNormalize(t *testing.T) {
	in := Record{Seq: 7, Prev: "p", Hash: "h", Action: "vm.start", User: "eve\n",
		Detail: strings.Repeat("x", 10000),
		Time:   time.Date(2024, 1, 1, 1, 0, 0, 0, time.FixedZone("X", 3600))}
	got, err := Normalize(in)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 0 || got.Prev != "" || got.Hash != "" {
		t.Errorf("Seq/Prev/Hash kept: %+v", got)
	}
	if got.User != `eve\x0a` {
		t.Errorf("User = %q", got.User)
	}
	if len(got.Detail) != MaxDetailLen || !strings.HasSuffix(got.Detail, truncMark) {
		t.Errorf("Detail len %d, suffix %q", len(got.Detail), got.Detail[len(got.Detail)-20:])
	}
	if got.Time.Location() != time.UTC || !got.Time.Equal(in.Time) {
		t.Errorf("Time = %v", got.Time)
	}
	for name, r := range map[string]Record{
		"empty action":  {User: "x"},
		"time too late": {Action: "a", Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
		"time too old":  {Action: "a", Time: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := Normalize(r); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: err = %v, want ErrInvalidRecord", name, err)
		}
	}
}
