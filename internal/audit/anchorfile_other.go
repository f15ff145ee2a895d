//go:build !linux

package audit

import (
	"errors"
	"os"
)

func setAppendOnlyFlag(*os.File) error   { return errors.ErrUnsupported }
func clearAppendOnlyFlag(*os.File) error { return errors.ErrUnsupported }
