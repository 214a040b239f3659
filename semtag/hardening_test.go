package semtag_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/opskit/opskit/semtag"
)

// TestHardening15PrefixStartingWithDash (issue 14, item 15): a prefix that
// starts with '-' would make every tag name look like a git option
// ("--upload-pack=touch/v1.0.0"); CheckPrefix refuses it, and Next too.
func TestHardening15PrefixStartingWithDash(t *testing.T) {
	for _, p := range []string{"--upload-pack=touch/", "-x/", "-/", "-tools/sub/"} {
		assert.ErrorIs(t, semtag.CheckPrefix(p), semtag.ErrBadPrefix, "CheckPrefix(%q)", p)
		_, err := semtag.Next(semtag.Input{Prefix: p})
		assert.ErrorIs(t, err, semtag.ErrBadPrefix, "Next with prefix %q", p)
	}
	for _, p := range []string{"", "tools/", "tools/-x/", "a-b/"} {
		assert.NoError(t, semtag.CheckPrefix(p), "CheckPrefix(%q)", p)
	}
}
