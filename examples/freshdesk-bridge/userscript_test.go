package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/gitlabx/jetstream"
	"github.com/opskit/opskit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shown is what the page showed after one click: the status box's final
// text and link, and every text it showed on the way.
type shown struct {
	Text, Href string
	Shown      []string
}

// clickButton runs escalate.user.js in node on a ticket page against the
// bridge at url and clicks the button clicks times.
func clickButton(t *testing.T, node, url, token, clicks string) []shown {
	t.Helper()
	script, err := filepath.Abs("escalate.user.js")
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), node, filepath.Join("testdata", "run-userscript.js"))
	cmd.Env = []string{"USERSCRIPT=" + script, "PAGE_URL=https://acme.freshdesk.com/a/tickets/4711",
		"BRIDGE_URL=" + url, "BRIDGE_TOKEN=" + token, "CLICKS=" + clicks}
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

// TestIntegrationUserscriptQueued runs escalate.user.js against a bridge
// that queues escalations in JetStream (embedded): the button shows
// "Queued", then the result it polled for, with the issue link; a second
// click reports the update the same way.
func TestIntegrationUserscriptQueued(t *testing.T) {
	node := testenv.Tool(t, "node")
	f := setup(t)
	emb, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(emb.Close)
	in, err := jetstream.New(t.Context(), jetstream.Config{Conn: emb.Conn(), Stream: "FRESHDESK_ESCALATIONS", Subject: "freshdesk.escalations"})
	require.NoError(t, err)
	results, err := jetstream.NewResults(t.Context(), jetstream.ResultsConfig{Conn: emb.Conn(), Bucket: "FRESHDESK_ESCALATION_RESULTS"})
	require.NoError(t, err)
	b, err := freshdesk.NewBridge(freshdesk.BridgeConfig{
		Freshdesk: f.fd.Client(), GitLab: f.gl.Client(), Project: 7, FreshdeskURL: f.fd.URL(),
		Token: "s3cret", AllowedOrigin: "https://acme.freshdesk.com", Intake: in, Results: results,
	})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Shutdown(context.Background()) }) // before emb.Close
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)

	res := clickButton(t, node, srv.URL, "s3cret", "2")
	require.Len(t, res, 2)
	issue := f.gl.URL() + "/acme/exporter/-/work_items/1"
	for i, want := range []string{"Created GitLab issue with 1 comments and 1 attachments:", "GitLab issue updated: 0 new comments, 0 new attachments:"} {
		assert.Contains(t, res[i].Shown, "Queued; escalating…", "click %d showed queued first: %q", i+1, res[i].Shown)
		assert.True(t, strings.HasPrefix(res[i].Text, want), "click %d ends with %q, got %q", i+1, want, res[i].Text)
		assert.Equal(t, issue, res[i].Href, "click %d", i+1)
		if len(res[i].Shown) > 0 {
			assert.Equal(t, res[i].Text, res[i].Shown[len(res[i].Shown)-1]+" "+res[i].Href, "click %d: the result is the last thing shown", i+1)
		}
	}
	assert.Len(t, f.gl.Issues(7), 1)
}

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

	click := func(t *testing.T, token, clicks string) []shown { return clickButton(t, node, srv.URL, token, clicks) }

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
	assert.Equal(t, []string{"Escalating…", strings.TrimSuffix(res[1].Text, " "+issue)}, res[1].Shown, "a synchronous answer is shown at once, never as queued")
	assert.Len(t, f.gl.Issues(7), 1)
}
