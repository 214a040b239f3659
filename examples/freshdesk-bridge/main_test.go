package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/internal/promtest"
)

type fakes struct {
	fd     *freshdesktest.Server
	gl     *gitlabtest.Server
	ticket int64
	env    map[string]string
	data   string // -data-dir: the embedded JetStream server's files
}

func setup(t *testing.T) *fakes {
	f := &fakes{fd: freshdesktest.NewServer(t), gl: gitlabtest.NewServer(t), data: t.TempDir()}
	f.gl.AddProject(gitlabtest.Project{ID: 7, Path: "acme/exporter"})
	tk := f.fd.AddTicket(freshdesktest.Ticket{Subject: "Export fails", Description: "<p>since 5.2</p>"})
	f.fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>log attached</p>", Incoming: true,
		Attachments: []freshdesktest.Attachment{{Name: "x.log", Content: []byte("boom")}}})
	f.ticket = tk.ID
	f.env = map[string]string{"FRESHDESK_API_KEY": f.fd.APIKey(), "GITLAB_TOKEN": f.gl.Token(), "BRIDGE_TOKEN": "s3cret"}
	return f
}

func (f *fakes) args(extra ...string) []string {
	return append([]string{"-freshdesk-url", f.fd.URL(), "-gitlab-url", f.gl.URL(), "-project", "acme/exporter", "-data-dir", f.data}, extra...)
}

func (f *fakes) getenv(k string) string { return f.env[k] }

func TestRunEscalateOnce(t *testing.T) {
	f := setup(t)
	var out, errb bytes.Buffer
	require.NoError(t, run(t.Context(), f.args("-escalate", "4711"), f.getenv, &out, &errb), errb.String())
	var got map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	assert.Equal(t, map[string]any{"issue_url": f.gl.URL() + "/acme/exporter/-/work_items/1", "created": true, "notes_added": 1.0, "attachments_copied": 1.0}, got)
	assert.Len(t, f.gl.Issues(7), 1)
}

func TestRunServes(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, f.args("-addr", "127.0.0.1:0"), f.getenv, pw, &errb)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	go io.Copy(io.Discard, pr)
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))

	post := func(token string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/escalate/4711", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	assert.Equal(t, http.StatusUnauthorized, post("").StatusCode)
	assert.Equal(t, http.StatusUnauthorized, post("wrong").StatusCode)
	resp := post("s3cret")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "queued in the embedded JetStream by default")
	var got map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, "queued", got["status"])
	got = waitResult(t, base, "s3cret", got["id"].(string))
	assert.Equal(t, "done", got["status"])
	assert.Equal(t, true, got["created"])
	assert.Len(t, f.gl.Issues(7), 1)

	req, _ := http.NewRequestWithContext(t.Context(), "OPTIONS", base+"/escalate/4711", nil)
	req.Header.Set("Origin", f.fd.URL())
	req.Header.Set("Access-Control-Request-Method", "POST")
	pre, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	pre.Body.Close()
	assert.Equal(t, http.StatusNoContent, pre.StatusCode, "-origin defaults to -freshdesk-url")

	cancel()
	require.NoError(t, <-done)
}

// waitResult polls GET /escalations/{id} until the escalation is no longer
// queued and returns its status.
func waitResult(t *testing.T, base, token, id string) map[string]any {
	t.Helper()
	var got map[string]any
	require.Eventually(t, func() bool {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/escalations/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		got = nil
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil {
			return false
		}
		return got["status"] != "queued"
	}, time.Minute, 20*time.Millisecond, "escalation %s finishes", id)
	return got
}

func TestRunFlags(t *testing.T) {
	f := setup(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(keyFile, []byte(f.fd.APIKey()+"\n"), 0o600))
	tests := []struct {
		name string
		args []string
		env  map[string]string
		is   error
		msg  string
	}{
		{"help", []string{"-h"}, nil, flag.ErrHelp, ""},
		{"bad flag", []string{"-bogus"}, nil, errUsage, ""},
		{"missing required", []string{"-project", "x"}, nil, errUsage, ""},
		{"extra args", f.args("extra"), nil, errUsage, ""},
		{"no api key", f.args("-escalate", "4711"), map[string]string{"GITLAB_TOKEN": "t"}, nil, "FRESHDESK_API_KEY"},
		{"no bridge token when serving", f.args(), map[string]string{"FRESHDESK_API_KEY": "k", "GITLAB_TOKEN": "t"}, nil, "BRIDGE_TOKEN"},
		{"bad close status", f.args("-close-status", "done"), nil, errUsage, ""},
		{"bad intake", f.args("-intake", "memory"), nil, errUsage, ""},
		{"nats creds without a cluster", f.args("-nats-creds", "x.creds"), nil, errUsage, ""},
		{"webhook token file missing", f.args("-hook-token-file", "/nonexistent/hook"), map[string]string{"FRESHDESK_API_KEY": "k", "GITLAB_TOKEN": "t", "BRIDGE_TOKEN": "b"}, nil, "no such file"},
		{"key file missing", f.args("-freshdesk-key-file", "/nonexistent/key", "-escalate", "1"), nil, nil, "no such file"},
		{"unknown ticket", f.args("-freshdesk-key-file", keyFile, "-escalate", "999"), map[string]string{"GITLAB_TOKEN": f.gl.Token()}, nil, "404 not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(t.Context(), tt.args, func(k string) string { return tt.env[k] }, &out, &errb)
			require.Error(t, err)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
				assert.Contains(t, errb.String(), "Usage: freshdesk-bridge")
			}
			if tt.msg != "" {
				assert.Contains(t, err.Error(), tt.msg)
			}
		})
	}
}

// TestRunServesWebhook: with a webhook token the bridge also serves POST
// /gitlab/webhook, and a ticket hears when its issue is closed.
func TestRunServesWebhook(t *testing.T) {
	f := setup(t)
	f.env["GITLAB_WEBHOOK_TOKEN"] = "hook-s3cret"
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, f.args("-addr", "127.0.0.1:0", "-close-status", "closed"), f.getenv, pw, &errb)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	go io.Copy(io.Discard, pr)
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))

	req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/escalate/4711", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var queued map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&queued))
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, "done", waitResult(t, base, "s3cret", queued["id"].(string))["status"])

	wrong, err := gitlabtest.SendWebhook(t.Context(), base+"/gitlab/webhook", gitlabtest.IssueHook, []byte(`{}`), gitlabtest.WebhookOptions{Token: "nope"})
	require.NoError(t, err)
	wrong.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, wrong.StatusCode, "the webhook token is checked")

	f.gl.AddHook(7, gitlabtest.Hook{URL: base + "/gitlab/webhook", Options: gitlabtest.WebhookOptions{Token: "hook-s3cret"}})
	dev := f.gl.ClientFor(gitlabtest.DeveloperToken)
	_, _, err = dev.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
	require.NoError(t, f.gl.WaitDeliveries(t.Context()))
	told := func() bool {
		for _, c := range f.fd.Conversations(f.ticket) {
			if strings.Contains(c.Body, "was closed by") {
				return true
			}
		}
		return false
	}
	require.Eventually(t, told, 10*time.Second, 5*time.Millisecond, "the ticket gets the close note")
	tk, _ := f.fd.Ticket(f.ticket)
	assert.Equal(t, freshdesk.StatusClosed, tk.Status, "the ticket is closed with its issue")

	cancel()
	require.NoError(t, <-done)
}

// scrape and sample read the metrics served at a -metrics-addr.
var (
	scrape = promtest.Scrape
	sample = promtest.Sample
)

// TestRunMetrics sends real traffic through the serving bridge (an
// escalation, the same again, an unknown ticket, a wrong token, an issue
// closed in GitLab) and scrapes -metrics-addr: the counters moved by what
// was done, and promlint finds nothing.
func TestRunMetrics(t *testing.T) {
	f := setup(t)
	f.env["GITLAB_WEBHOOK_TOKEN"] = "hook-s3cret"
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, f.args("-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-log-format", "json", "-v", "-intake", "sync"), f.getenv, pw, &errb)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	mline, err := br.ReadString('\n')
	require.NoError(t, err)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	go io.Copy(io.Discard, pr)
	metricsURL := strings.TrimSpace(strings.TrimPrefix(mline, "metrics on "))
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))

	post := func(ticket, token string) int {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/escalate/"+ticket, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, post("4711", "s3cret"))
	require.Equal(t, http.StatusOK, post("4711", "s3cret"))
	require.Equal(t, http.StatusNotFound, post("999", "s3cret"))
	require.Equal(t, http.StatusUnauthorized, post("4711", "wrong"))

	f.gl.AddHook(7, gitlabtest.Hook{URL: base + "/gitlab/webhook", Options: gitlabtest.WebhookOptions{Token: "hook-s3cret"}})
	dev := f.gl.ClientFor(gitlabtest.DeveloperToken)
	_, _, err = dev.Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	require.NoError(t, err)
	require.NoError(t, f.gl.WaitDeliveries(t.Context()))
	require.Eventually(t, func() bool {
		return sample(scrape(t, metricsURL), "opskit_freshdesk_sync_actions_total", "kind", "close", "result", "synced") == 1
	}, 10*time.Second, 10*time.Millisecond, "the close reached the ticket and was counted")

	require.NoError(t, testutil.ScrapeAndCompare(metricsURL, strings.NewReader(`
# HELP opskit_freshdesk_escalations_total Escalations of tickets to GitLab that ended, by result: created (new issue), updated (notes or files added), unchanged, not_found (no such ticket), rate_limited (Freshdesk kept answering 429), error.
# TYPE opskit_freshdesk_escalations_total counter
opskit_freshdesk_escalations_total{result="created"} 1
opskit_freshdesk_escalations_total{result="error"} 0
opskit_freshdesk_escalations_total{result="not_found"} 1
opskit_freshdesk_escalations_total{result="rate_limited"} 0
opskit_freshdesk_escalations_total{result="unchanged"} 1
opskit_freshdesk_escalations_total{result="updated"} 0
`), "opskit_freshdesk_escalations_total"), "the wrong token started no escalation")
	fams := scrape(t, metricsURL)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"opskit_freshdesk_notes_copied_total", nil, 1},
		{"opskit_freshdesk_attachments_copied_total", nil, 1},
		{"opskit_gitlabx_deliveries_total", []string{"event", "Issue Hook", "answer", "accepted"}, 1},
		{"opskit_gitlabx_handler_errors_total", nil, 0},
		{"opskit_freshdesk_escalation_duration_seconds", nil, 3},
		{"opskit_freshdesk_escalations_in_flight", nil, 0},
		{"opskit_http_client_requests_total", []string{"client", "gitlab", "endpoint", "/api/v4/projects/:id/issues", "method", "POST", "code", "201"}, 1},
		{"opskit_http_client_requests_total", []string{"client", "freshdesk", "endpoint", "/api/v2/tickets/:id", "method", "GET", "code", "404"}, 1},
		{"opskit_http_client_requests_total", []string{"client", "freshdesk", "endpoint", "attachment", "method", "GET", "code", "200"}, 1},
		{"opskit_http_client_requests_total", []string{"client", "freshdesk", "endpoint", "/api/v2/tickets/:id/notes", "method", "POST", "code", "201"}, 2},
		{"opskit_http_client_requests_total", []string{"client", "freshdesk", "endpoint", "/api/v2/tickets/:id", "method", "PUT", "code", "200"}, 1},
	} {
		assert.Equal(t, tt.want, sample(fams, tt.name, tt.labels...), "%s%v", tt.name, tt.labels)
	}
	assert.NotEqual(t, -1.0, sample(fams, "go_goroutines"), "go_goroutines served")
	assert.NotEqual(t, -1.0, sample(fams, "process_start_time_seconds"), "process_start_time_seconds served")
	problems, err := testutil.GatherAndLint(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return fams, nil
	}))
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint on the served metrics")

	cancel()
	require.NoError(t, <-done)
	var escalated map[string]any
	for l := range strings.SplitSeq(errb.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "escalated" {
			escalated = rec
			break
		}
	}
	require.NotNil(t, escalated, "-log-format json -v logs the escalation as JSON:\n%s", errb.String())
	assert.Len(t, escalated["trace_id"], 32, "with the escalation span's trace ID")
}
