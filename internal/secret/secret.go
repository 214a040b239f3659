// Package secret holds the credential plumbing shared by opskit's packages:
// constant-time comparisons of plain strings, for the places that receive a
// secret on the wire.
//
// It is internal. The public secret type is opskit.Secret (package
// github.com/opskit/opskit); String is an alias of it, kept for the code
// written before it existed. Exported identifiers of public packages use
// opskit.Secret, never String (TestPublicAPIHasNoInternalTypes checks).
package secret

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/opskit/opskit"
)

// String is opskit.Secret.
type String = opskit.Secret

// Redacted is what a secret prints as.
const Redacted = opskit.Redacted

// Equal reports whether got equals want in time that depends on neither
// value's contents nor on got's length relative to want's: both are hashed
// first, so the comparison is over two fixed-size digests. It is
// opskit.Secret.Equal for plain strings.
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
