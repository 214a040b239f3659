//go:build !unix

package workflow

import "os"

// lockJournal does nothing where flock is not available.
func lockJournal(*os.File) error { return nil }
