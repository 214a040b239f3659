package agent

import (
	"errors"
	"fmt"
)

// Errors that the agent returns, and that Client returns when the agent
// answered with them, so errors.Is works on both sides.
var (
	// ErrBusy: another install of the same package (or another stats
	// collection) is running. HTTP 409.
	ErrBusy = errors.New("agent: busy")
	// ErrUnsafeArchive: the zip has an entry that would escape the
	// package root or is not a plain file, directory or inside symlink.
	// HTTP 400. The error is an *ArchiveError.
	ErrUnsafeArchive = errors.New("agent: unsafe archive")
	// ErrZipBomb: the zip unpacks to more than the caps allow. HTTP 413.
	ErrZipBomb = errors.New("agent: archive exceeds the unpack limits")
	// ErrBadArchive: the upload is not a readable zip (truncated,
	// corrupt). HTTP 400.
	ErrBadArchive = errors.New("agent: bad archive")
	// ErrTooLarge: the upload is larger than MaxUpload. HTTP 413.
	ErrTooLarge = errors.New("agent: upload too large")
	// ErrBinaryNotFound: the manifest names a binary that is not an
	// executable file. HTTP 422.
	ErrBinaryNotFound = errors.New("agent: binary not found")
	// ErrBadRequest: a malformed package name, manifest or request. HTTP 400.
	ErrBadRequest = errors.New("agent: bad request")
	// ErrNotFound: no package of that name is installed. HTTP 404.
	ErrNotFound = errors.New("agent: package not found")
	// ErrStartFailed: the program could not be started or exited at once;
	// an upgrade was rolled back. HTTP 422. The error is a *StartError.
	ErrStartFailed = errors.New("agent: program failed to start")
	// ErrUnauthorized: a missing or wrong token. HTTP 401.
	ErrUnauthorized = errors.New("agent: unauthorized")
	// ErrDirLocked: another agent (a live process) holds Config.Dir. New
	// returns it; nothing in the directory is touched.
	ErrDirLocked = errors.New("agent: directory in use by another agent")
	// ErrSocketInUse: Listen found a unix socket at its path that accepts
	// connections (a running agent); it is left in place.
	ErrSocketInUse = errors.New("agent: socket in use by a running agent")
	// ErrInsecureListen: a TCP listener without a token or TLS. Listen
	// returns it before opening anything.
	ErrInsecureListen = errors.New("agent: refusing to listen on TCP without a token or TLS")
)

// ArchiveError reports the zip entry that was refused and why.
type ArchiveError struct {
	Entry  string // the name as stored in the zip
	Reason string
	Err    error // ErrUnsafeArchive or ErrZipBomb
}

// Error names the entry and the reason.
func (e *ArchiveError) Error() string {
	return fmt.Sprintf("%v: entry %q: %s", e.Err, e.Entry, e.Reason)
}

// Unwrap returns ErrUnsafeArchive or ErrZipBomb.
func (e *ArchiveError) Unwrap() error { return e.Err }

// StartError reports a program that failed to start or exited during the
// start grace period. Output holds the tail of its log.
type StartError struct {
	Package string
	Exit    string // "exit status 1", "signal: killed" or the exec error
	Output  string
	// RolledBack is true when the previous version was restored.
	RolledBack bool
}

// Error names the package and how its program ended.
func (e *StartError) Error() string {
	s := fmt.Sprintf("agent: package %s: program failed to start: %s", e.Package, e.Exit)
	if e.RolledBack {
		s += " (rolled back to the previous version)"
	}
	return s
}

// Is reports whether target is ErrStartFailed.
func (e *StartError) Is(target error) bool { return target == ErrStartFailed }
