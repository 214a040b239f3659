//go:build !linux

package release

import "os"

const directAlign = 4096

// createTarball creates path for writing; O_DIRECT is used on Linux only.
func createTarball(path string, allowDirect bool) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	return f, false, err
}

func setBuffered(*os.File) error { return nil }

func allocBuffers(n, size int) ([][]byte, func(), error) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, func() {}, nil
}
