//go:build unix

package backup

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// flock locks f alone without waiting; ErrInUse if another open file holds it (even
// in this process: flock locks belong to the open file).
func flock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrInUse
	}
	if err != nil {
		return fmt.Errorf("backup: lock %s: %w", f.Name(), err)
	}
	return nil
}
