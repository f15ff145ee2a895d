//go:build !linux

package seccomp

import "fmt"

// Install is only possible on Linux.
func Install(name string) error {
	return fmt.Errorf("seccomp filter %q: seccomp is Linux only", name)
}
