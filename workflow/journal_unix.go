//go:build unix

package workflow

import (
	"errors"
	"os"
	"syscall"
)

// lockJournal takes an exclusive, non-blocking flock on the journal, so
// that two controllers cannot append to one journal. The kernel drops the
// lock when the process dies, so a crash never leaves it behind.
func lockJournal(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrJournalLocked
	}
	return err
}
