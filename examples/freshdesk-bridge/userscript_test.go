package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIntegrationUserscript runs escalate.user.js in node against the real
// bridge handler (on the fakes): the button appears on a ticket page, a click
// escalates and shows the issue link, a second click reports the update, and
// a wrong token says so.
func TestIntegrationUserscript(t *testing.T) {
	node := testenv.Tool(t, "node")
	f := setup(t)
	b, err := freshdesk.NewBridge(freshdesk.BridgeConfig{
		Freshdesk: f.fd.Client(), GitLab: f.gl.Client(), Project: 7, FreshdeskURL: f.fd.URL(),
		Token: "s3cret", AllowedOrigin: "https://acme.freshdesk.com",
	})
	require.NoError(t, err)
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)

	type shown struct{ Text, Href string }
	click := func(t *testing.T, token string, clicks string) []shown {
		t.Helper()
		script, err := filepath.Abs("escalate.user.js")
		require.NoError(t, err)
		cmd := exec.CommandContext(t.Context(), node, filepath.Join("testdata", "run-userscript.js"))
		cmd.Env = []string{"USERSCRIPT=" + script, "PAGE_URL=https://acme.freshdesk.com/a/tickets/4711",
			"BRIDGE_URL=" + srv.URL, "BRIDGE_TOKEN=" + token, "CLICKS=" + clicks}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "node: %s", stderr.String())
		var res []shown
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			var s shown
			require.NoError(t, json.Unmarshal(sc.Bytes(), &s), sc.Text())
			res = append(res, s)
		}
		return res
	}

	res := click(t, "wrong", "1")
	require.Len(t, res, 1)
	assert.Contains(t, res[0].Text, "refused the token")
	assert.Empty(t, f.gl.Issues(7))

	res = click(t, "s3cret", "2")
	require.Len(t, res, 2)
	issue := f.gl.URL() + "/acme/exporter/-/work_items/1"
	assert.True(t, strings.HasPrefix(res[0].Text, "Created GitLab issue with 1 comments and 1 attachments:"), res[0].Text)
	assert.Equal(t, issue, res[0].Href)
	assert.True(t, strings.HasPrefix(res[1].Text, "GitLab issue updated: 0 new comments, 0 new attachments:"), res[1].Text)
	assert.Equal(t, issue, res[1].Href)
	assert.Len(t, f.gl.Issues(7), 1)
}
