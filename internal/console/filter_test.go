package console

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCountKeys(t *testing.T) {
	for in, want := range map[string]int{
		"":                 0,
		"a":                1,
		"ls -l\r":          6,
		"\x1b[A":           1, // up arrow
		"\x1b[1;5C":        1, // ctrl+right
		"\x1bOP":           1, // F1
		"\x1bx":            1, // alt+x
		"é€":               2,
		"\x1b[A\x1b[Bq":    3,
		"\xff\xfe":         2,
		"\x1b":             1,
		"\x1b[" + "1;1;1;": 1,
	} {
		if got := CountKeys([]byte(in)); got != want {
			t.Errorf("CountKeys(%q) = %d, want %d", in, got, want)
		}
	}
}

func deny() InputPolicy { return DefaultPolicy().Input }

func TestFilterTypingPasses(t *testing.T) {
	f := NewInputFilter(deny())
	now := time.Unix(1000, 0)
	// A person typing a long command at 10 keys/s, one key per message.
	for i, c := range strings.Repeat("echo hello world; ", 10) {
		if err := f.Check([]byte(string(c)), now.Add(time.Duration(i)*100*time.Millisecond)); err != nil {
			t.Fatalf("key %d refused: %v", i, err)
		}
	}
}

func TestFilterBracketedPasteRefused(t *testing.T) {
	f := NewInputFilter(deny())
	now := time.Unix(1000, 0)
	var r *Refusal
	if err := f.Check([]byte("\x1b[200~pw\x1b[201~"), now); !errors.As(err, &r) || !strings.Contains(r.Reason, "bracketed paste") {
		t.Fatalf("bracketed paste: %v", err)
	}
	// Split across two messages.
	if err := f.Check([]byte("\x1b[20"), now.Add(time.Second)); err != nil {
		t.Fatalf("first half: %v", err)
	}
	if err := f.Check([]byte("0~x"), now.Add(2*time.Second)); !errors.As(err, &r) {
		t.Fatalf("split marker not caught: %v", err)
	}
	// Typing still works afterwards.
	if err := f.Check([]byte("l"), now.Add(3*time.Second)); err != nil {
		t.Fatalf("typing after refusal: %v", err)
	}
}

func TestFilterLumpAndBurst(t *testing.T) {
	f := NewInputFilter(deny())
	now := time.Unix(1000, 0)
	if err := f.Check([]byte("correct horse battery"), now); err == nil {
		t.Fatal("21 keys in one message admitted")
	}
	// One key per message but machine-fast: the burst admits 40, then refusals.
	refused := 0
	for i := 0; i < 100; i++ {
		if f.Check([]byte("x"), now.Add(time.Duration(i)*time.Millisecond)) != nil {
			refused++
		}
	}
	if refused < 55 || refused > 60 {
		t.Fatalf("refused %d of 100 machine-speed keys, want about 58", refused)
	}
	// After a pause the bucket refills.
	if err := f.Check([]byte("y"), now.Add(5*time.Second)); err != nil {
		t.Fatalf("after pause: %v", err)
	}
}

func TestFilterAllow(t *testing.T) {
	p := deny()
	p.Clipboard = true
	f := NewInputFilter(p)
	if err := f.Check([]byte("\x1b[200~"+strings.Repeat("p", 3000)+"\x1b[201~"), time.Unix(1, 0)); err != nil {
		t.Fatalf("allow policy refused a paste: %v", err)
	}
}

func FuzzInputFilter(f *testing.F) {
	f.Add([]byte("\x1b[200~x"), []byte("abc"))
	f.Add([]byte("\x1b[2"), []byte("00~"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		fl := NewInputFilter(deny())
		fl.Check(a, time.Unix(1, 0))
		fl.Check(b, time.Unix(2, 0))
		if len(fl.tail) >= len(pasteStart) {
			t.Fatalf("tail grew to %d", len(fl.tail))
		}
		if n := CountKeys(append(a, b...)); n > len(a)+len(b) {
			t.Fatalf("more keys (%d) than bytes", n)
		}
	})
}
