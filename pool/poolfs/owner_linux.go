package poolfs

import (
	"os"
	"syscall"
)

// ownerUID is the owner of a file, when the platform says.
func ownerUID(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
