//go:build linux

package release

import (
	"errors"
	"os"
	"syscall"
)

// directAlign is the alignment O_DIRECT needs for buffers, lengths and
// offsets on the file systems releases live on.
const directAlign = 4096

// createTarball creates path for writing, with O_DIRECT when allowDirect
// is set and the file system supports it: the tarball then goes from our buffers to the disk
// without the page-cache copy that costs most of a buffered write's CPU.
func createTarball(path string, allowDirect bool) (*os.File, bool, error) {
	if allowDirect {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_DIRECT, 0o644)
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, syscall.EINVAL) {
			return nil, false, err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	return f, false, err
}

// setBuffered turns O_DIRECT off for f.
func setBuffered(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		flags, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		if e != 0 {
			serr = e
			return
		}
		_, _, e = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, flags&^syscall.O_DIRECT)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	return err
}

// allocBuffers returns n page-aligned buffers of size bytes, as O_DIRECT
// needs, and a function that frees them.
func allocBuffers(n, size int) ([][]byte, func(), error) {
	mem, err := syscall.Mmap(-1, 0, n*size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = mem[i*size : (i+1)*size : (i+1)*size]
	}
	return bufs, func() { syscall.Munmap(mem) }, nil
}
