package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestNetFormatting(t *testing.T) {
	var port map[string]any
	if err := json.Unmarshal([]byte(`{"id":3,"rx_frames":320000000,"drops":{"storm_control":1234567,"bad_arp":2,"fw_drop":10000000}}`), &port); err != nil {
		t.Fatal(err)
	}
	if got := count(port["rx_frames"]); got != "320000000" {
		t.Errorf("count = %q", got)
	}
	if got := formatDrops(port["drops"]); got != "bad_arp=2 fw_drop=10000000 storm_control=1234567" {
		t.Errorf("drops = %q", got)
	}
	if got := formatDrops(nil); got != "-" {
		t.Errorf("no drops = %q", got)
	}
	var g any
	json.Unmarshal([]byte(`{"name":"web","rules":[{"id":"r1"},{"id":"r2"},{"id":"r3"}]}`), &g)
	for pos, want := range map[int]string{-1: "r3", 0: "r1", 1: "r2", 9: "r3"} {
		if got := addedRuleID(g, pos); got != want {
			t.Errorf("position %d: %q, want %q", pos, got, want)
		}
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{"10m": "2026-12-01T09:50:00Z", "2026-12-01T11:00:00+01:00": "2026-12-01T10:00:00Z"} {
		if got, err := logTime(in, now); err != nil || got != want {
			t.Errorf("logTime(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := logTime("yesterday", now); err == nil {
		t.Error("logTime accepted yesterday")
	}
}
