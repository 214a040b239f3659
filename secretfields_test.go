package opskit_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/fleet/agent"
	"github.com/opskit/opskit/fleet/fleettest"
	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/releasetest"
)

// TestSecretFieldsTakeOpskitSecret is checked by the compiler first: every
// secret-bearing configuration field accepts opskit.Secret(s) built from a
// string variable, as a user's program has it (this file does not build
// when one field has another type). Then it checks that none of those
// configurations prints the secret.
func TestSecretFieldsTakeOpskitSecret(t *testing.T) {
	tok := os.Getenv("OPSKIT_TEST_NO_SUCH_VARIABLE") + "hunter2" // a string variable
	configs := []any{
		fleettest.Config{Password: opskit.Secret(tok)},
		agent.Config{Token: opskit.Secret(tok)},
		agent.ClientConfig{Token: opskit.Secret(tok)},
		agent.ListenConfig{Token: opskit.Secret(tok)},
		freshdesk.Config{APIKey: opskit.Secret(tok)},
		freshdesk.BridgeConfig{Token: opskit.Secret(tok)},
		gitlabx.HooksConfig{Token: opskit.Secret(tok), SigningToken: opskit.Secret(tok)},
		release.ReceiverConfig{Secrets: []opskit.Secret{opskit.Secret(tok)}},
		&release.Uploader{Secret: opskit.Secret(tok)},
		&release.Fetcher{Secret: opskit.Secret(tok)},
		&releasetest.Server{Secret: opskit.Secret(tok)},
	}
	// The package-level names stay usable for code written before: they are
	// aliases of opskit.Secret.
	var _ opskit.Secret = freshdesk.Secret(tok)
	var _ opskit.Secret = release.Secret(tok)
	var _ opskit.Secret = gitlabx.Secret(tok)
	for _, c := range configs {
		for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
			assert.NotContains(t, out, "hunter2", "%T printed its secret: %s", c, out)
		}
	}
}
