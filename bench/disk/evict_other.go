//go:build !linux

package main

import "errors"

var errLinuxOnly = errors.New("disk: Linux only")

func evict(string) error { return errLinuxOnly }

func sameFS(string, string) (bool, string, error) { return false, "", errLinuxOnly }
