//go:build !linux

package main

import "errors"

const filterCostEnv = "BULWARK_BENCH_JAIL_FILTER_COST"

type filterCost struct {
	Syscall  string  `json:"syscall"`
	BeforeNS float64 `json:"before_ns"`
	AfterNS  float64 `json:"after_ns"`
}

func filterCostChild() int { return 1 }

func measureFilterCost() ([]filterCost, error) {
	return nil, errors.New("seccomp filters are Linux-only")
}
