// Package testenv gates tests that need a real program on the machine
// (OpenSSH's sshd, git, gzip, ...).
//
// Locally such a test skips when the program is missing. In CI (CI=true) or
// when OPSKIT_REQUIRE_INTEGRATION=1, a missing program fails the test
// instead, so integration tests never skip silently where they must run.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Required reports whether missing integration tools must fail tests.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("OPSKIT_REQUIRE_INTEGRATION") == "1"
}

// LookPath finds a program on PATH or in the sbin directories, which are
// often missing from a non-root PATH (sshd lives in /usr/sbin).
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// Tool returns the path of a required program. It skips the test when the
// program is missing, or fails it when Required reports true.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := LookPath(name)
	if err != nil {
		if Required() {
			tb.Fatalf("%s is required for this integration test (CI=true or OPSKIT_REQUIRE_INTEGRATION=1) but was not found; install it (see .ci/run)", name)
		}
		tb.Skipf("%s not found; skipping integration test (set OPSKIT_REQUIRE_INTEGRATION=1 to make this fail)", name)
	}
	return p
}
