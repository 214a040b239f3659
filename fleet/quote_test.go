package fleet_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/opskit/opskit/fleet"
)

// FuzzShellQuote checks that /bin/sh turns ShellQuote's output back into
// the same arguments, whatever they contain.
func FuzzShellQuote(f *testing.F) {
	for _, s := range []string{"plain", "a b", "it's", `"$HOME" $(id) ` + "`id`", "*", "", "-n", "new\nline", "\\", "ünï"} {
		f.Add(s, "second")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.ContainsRune(a+b, 0) {
			t.Skip("arguments cannot hold NUL")
		}
		line := "printf '%s|' " + fleet.ShellQuote(a, b)
		out, err := exec.Command("/bin/sh", "-c", line).Output()
		if err != nil {
			t.Fatalf("sh -c %q: %v", line, err)
		}
		if want := a + "|" + b + "|"; string(out) != want {
			t.Fatalf("sh -c %q printed %q; want %q", line, out, want)
		}
	})
}
