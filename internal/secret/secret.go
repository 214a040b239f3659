// Package secret holds the credential plumbing shared by opskit's packages:
// a string type that never prints and a constant-time comparison.
//
// It is internal: users configure secrets through each package's own types.
package secret

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
)

// String is a credential. Its String, GoString and LogValue methods never
// reveal the value, so a secret that reaches fmt or slog prints as REDACTED.
type String string

// Redacted is what a String prints as.
const Redacted = "REDACTED"

// String implements fmt.Stringer without revealing the value.
func (String) String() string { return Redacted }

// GoString implements fmt.GoStringer without revealing the value.
func (String) GoString() string { return Redacted }

// LogValue implements slog.LogValuer without revealing the value.
func (String) LogValue() slog.Value { return slog.StringValue(Redacted) }

// Reveal returns the credential itself, for the one place that must send it.
func (s String) Reveal() string { return string(s) }

// Equal reports whether got equals want in time that depends on neither
// value's contents nor on got's length relative to want's: both are hashed
// first, so the comparison is over two fixed-size digests.
// An empty want never matches, so an unset secret cannot be satisfied by an
// empty one.
func Equal(got, want string) bool {
	if want == "" {
		return false
	}
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// AnyEqual reports whether got equals any of wants, comparing against every
// candidate so the time taken does not tell which one matched. It supports
// secret rotation, where an old and a new secret are accepted side by side.
func AnyEqual(got string, wants ...string) bool {
	ok := 0
	for _, w := range wants {
		if Equal(got, w) {
			ok = 1
		}
	}
	return ok == 1
}
