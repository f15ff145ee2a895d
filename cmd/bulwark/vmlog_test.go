package main

import "testing"

func TestCurrentBoot(t *testing.T) {
	for _, c := range []struct {
		log, want string
		found     bool
	}{
		{"firmware\n[    0.000000] Linux version 6.1 a\nboot 1\nLinux version 6.1 b\nboot 2\n", "Linux version 6.1 b\nboot 2\n", true},
		{"[    0.000000] Linux version 6.1\nup\n", "[    0.000000] Linux version 6.1\nup\n", true},
		{"no banner\n", "no banner\n", false},
		// Only at a line start: a banner quoted inside a line does not count.
		{"[    0.000000] Linux version x\nsaid: Linux version y\n", "[    0.000000] Linux version x\nsaid: Linux version y\n", true},
	} {
		got, found := currentBoot([]byte(c.log))
		if string(got) != c.want || found != c.found {
			t.Errorf("%q: %q %v", c.log, got, found)
		}
	}
}
