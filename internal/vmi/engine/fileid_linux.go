package engine

import (
	"fmt"
	"os"
	"syscall"
)

// fileID is a file's device and inode, so a replaced kernel image is not
// mistaken for the cached one.
func fileID(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return fi.Name()
}
