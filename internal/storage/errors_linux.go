package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

var (
	errNoSpace  error = unix.ENOSPC
	errNotExist       = os.ErrNotExist
)
