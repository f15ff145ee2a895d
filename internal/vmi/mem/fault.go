package mem

import "runtime/debug"

// safeCopy copies src, a slice of the RAM mapping, into dst and turns a
// fault of the mapping into an error. Pages of a MAP_SHARED file mapping
// fault with SIGBUS when the file shrank under them (QEMU, or whoever
// controls the file, truncated it); without this the monitor would crash
// on the guest's say-so. debug.SetPanicOnFault is per goroutine, so it is
// switched on only around this copy and restored after.
func safeCopy(dst, src []byte) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if _, ok := r.(interface{ Addr() uintptr }); !ok {
			panic(r) // not a memory fault: a bug, not guest input
		}
		// The host address is left out: errors may reach logs and the API.
		err = ErrFault
	}()
	copy(dst, src)
	return nil
}
