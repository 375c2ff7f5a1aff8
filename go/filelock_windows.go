//go:build windows

package writelane

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// The FileStore's lock: LockFileEx on the whole lock file, shared for reads and
// exclusive for updates (released when the file is closed).
const (
	lockShared    = 0
	lockExclusive = windows.LOCKFILE_EXCLUSIVE_LOCK
)

// tryLock takes the lock without waiting; busy says another process holds it.
func tryLock(file *os.File, how int) (busy bool, err error) {
	var ol windows.Overlapped
	err = windows.LockFileEx(windows.Handle(file.Fd()), uint32(how)|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if err == nil {
		return false, nil
	}
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return true, nil
	}
	return false, err
}
