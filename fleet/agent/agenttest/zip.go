package agenttest

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"os/exec"
)

// ProgramZip returns a package zip that holds a copy of the host program
// (looked up on PATH, e.g. "sleep") as name (e.g. "bin/sleep"), mode 0755,
// so tests install a real program without building one.
func ProgramZip(program, name string) ([]byte, error) {
	p, err := exec.LookPath(program)
	if err != nil {
		return nil, fmt.Errorf("agenttest: %w", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("agenttest: %w", err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, fmt.Errorf("agenttest: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return nil, fmt.Errorf("agenttest: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("agenttest: %w", err)
	}
	return buf.Bytes(), nil
}
