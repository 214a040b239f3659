// Package atomicfile writes files so that readers see either the old content
// or the complete new content, never a torn file, and a failed write leaves
// nothing behind.
//
// It is internal plumbing for release, fleet and fleet/agent.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File is a temporary file beside its final path. Write to it, then call
// Commit to fsync and rename it into place, or Abort to remove it.
// Abort after Commit is a no-op, so `defer f.Abort()` is always safe.
type File struct {
	*os.File
	dst  string
	done bool
}

// Create makes a temporary file in dst's directory (so the final rename
// stays on one file system) with the given permissions.
// The caller must call Commit or Abort.
func Create(dst string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(dst)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, dst: dst}, nil
}

// Commit flushes the file to stable storage, renames it over the final
// path and syncs the directory so that the rename survives a crash.
// On error the temporary file is removed and the final path is untouched.
func (f *File) Commit() error {
	if f.done {
		return errors.New("atomicfile: already committed or aborted")
	}
	f.done = true
	tmp := f.Name()
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: %s: %w", f.dst, err)
	}
	return SyncDir(filepath.Dir(f.dst))
}

// Abort closes and removes the temporary file. It is a no-op after Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// SyncDir fsyncs a directory, making renames and creations inside it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync %s: %w", dir, err)
	}
	return nil
}

// WriteFile writes data to path atomically with the given permissions.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}
