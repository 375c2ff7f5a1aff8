//go:build unix

package writelane

import (
	"errors"
	"os"
	"syscall"
)

// The FileStore's lock: flock(2), shared for reads and exclusive for updates.
const (
	lockShared    = syscall.LOCK_SH
	lockExclusive = syscall.LOCK_EX
)

// tryLock takes the lock without waiting; busy says another process holds it.
func tryLock(file *os.File, how int) (busy bool, err error) {
	err = syscall.Flock(int(file.Fd()), how|syscall.LOCK_NB)
	if err == nil {
		return false, nil
	}
	if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
		return true, nil
	}
	return false, err
}
