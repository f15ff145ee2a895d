package benchrun

import "testing"

func TestSummarize(t *testing.T) {
	if d := Summarize(nil); d != (Dist{}) {
		t.Fatalf("empty: %+v", d)
	}
	d := Summarize([]float64{5, 1, 3, 2, 4})
	if d.N != 5 || d.Median != 3 || d.Mean != 3 || d.Min != 1 || d.Max != 5 || d.P90 != 5 {
		t.Fatalf("odd: %+v", d)
	}
	if d := Summarize([]float64{4, 1, 3, 2}); d.Median != 2.5 || d.Stdev < 1.29 || d.Stdev > 1.30 {
		t.Fatalf("even: %+v", d)
	}
}
