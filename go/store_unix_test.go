//go:build unix

package writelane_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	writelane "github.com/writelane/writelane/go"
)

// The lock is a flock of PATH.lock (the Python binding's FileStore takes the same one, so
// both can share a store): while another process holds it, operations wait, and report
// the store unavailable when they cannot wait longer.
func TestFileStoreLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	fd := int(lock.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	s := writelane.NewFileStore(path)
	op := writelane.StoreOp{Op: "put_if_absent", Key: "k", Record: &writelane.LeaseRecord{Rvn: 1}}
	if r := writelane.ApplyStoreOp(ctx, s, op); r.Reply != writelane.ReplyUnavailable {
		t.Fatalf("while another holds the lock: %s %v", r.Reply, r.Err)
	}
	// Released in the middle of a wait: the operation goes through.
	released := make(chan struct{})
	time.AfterFunc(100*time.Millisecond, func() { _ = syscall.Flock(fd, syscall.LOCK_UN); close(released) })
	r := writelane.ApplyStoreOp(context.Background(), s, op)
	<-released
	if r.Reply != writelane.ReplyDone {
		t.Fatalf("after the lock was released: %s %v", r.Reply, r.Err)
	}
}
