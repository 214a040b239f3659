package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestRunFlags(t *testing.T) {
	t.Setenv("GITLAB_TOKEN", "")
	t.Setenv("GITLAB_WEBHOOK_SECRET", "")
	secret := writeFile(t, "secret", "s\n")
	tests := []struct {
		name string
		args []string
		want error
		msg  string
	}{
		{"help", []string{"-h"}, flag.ErrHelp, "Usage: gitlab-hooks"},
		{"bad flag", []string{"-nope"}, errUsage, "flag provided but not defined"},
		{"no url", []string{"-token-file", secret}, errUsage, "-gitlab-url is required"},
		{"four labels", []string{"-gitlab-url", "http://x", "-labels", "a,b,c,d"}, errUsage, "five labels"},
		{"bad regexp", []string{"-gitlab-url", "http://x", "-version-regexp", "("}, errUsage, "capture group"},
		{"extra args", []string{"-gitlab-url", "http://x", "more"}, errUsage, "unexpected arguments"},
		{"bad intake", []string{"-gitlab-url", "http://x", "-intake", "disk"}, errUsage, "-intake must be jetstream or memory"},
		{"creds without url", []string{"-gitlab-url", "http://x", "-nats-creds", secret}, errUsage, "need -nats-url"},
		{"no data dir", []string{"-gitlab-url", "http://x", "-data-dir", ""}, errUsage, "-data-dir is required"},
		{"no token", []string{"-gitlab-url", "http://x", "-secret-file", secret}, nil, "set -token-file or $GITLAB_TOKEN"},
		{"missing secret file", []string{"-gitlab-url", "http://x", "-token-file", secret, "-secret-file", "/nonexistent"}, nil, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut strings.Builder
			err := run(t.Context(), tt.args, &out, &errOut)
			require.Error(t, err)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
			}
			assert.Contains(t, err.Error()+errOut.String(), tt.msg)
		})
	}
}

func TestRunBadGitLabToken(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	err := run(t.Context(), []string{"-gitlab-url", srv.URL(), "-token-file", writeFile(t, "token", "wrong"),
		"-secret-file", writeFile(t, "secret", "s")}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "checking the GitLab token")
	assert.NotContains(t, err.Error(), "wrong", "the token is not printed")
}

// TestRun serves the two bots, sends an MR open event and stops: the MR gets
// its warning and the linked issue moves to In Review, with each intake.
func TestRun(t *testing.T) {
	t.Run("embedded jetstream", func(t *testing.T) { testRun(t, "-data-dir", t.TempDir()) })
	t.Run("memory", func(t *testing.T) { testRun(t, "-intake", "memory") })
}

func testRun(t *testing.T, intakeArgs ...string) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	for _, l := range []string{"wf::Todo", "wf::Doing", "wf::Review", "wf::QA", "wf::Testing"} {
		srv.AddLabel(7, l)
	}
	srv.SetFile(7, "main", "package.json", []byte(`{"version":"1.0.0"}`))
	srv.SetFile(7, "12-fix-login", "package.json", []byte(`{"version":"1.1.0"}`))
	srv.AddIssue(7, gitlabtest.Issue{Title: "login broken", AuthorID: 42})
	srv.AddIssue(7, gitlabtest.Issue{Title: "other", AuthorID: 42})
	mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "Fix login", SourceBranch: "12-fix-login", ClosesIssues: []int64{1}, AuthorID: 42})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-gitlab-url", srv.URL(),
			"-token-file", writeFile(t, "token", srv.Token()), "-secret-file", writeFile(t, "secret", "hook-secret"),
			"-version-file", "package.json", "-labels", "Todo,Doing,Review,QA,Testing", "-scope", "wf"}, intakeArgs...), pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	require.True(t, lines.Scan(), "first line")
	first := lines.Text()
	require.Contains(t, first, "listening on http://127.0.0.1:")
	url := strings.Fields(strings.TrimPrefix(first, "gitlab-hooks: listening on "))[0]

	body, err := srv.MergeRequestEvent(7, mr.IID, gitlabtest.EventOptions{Action: "open"})
	require.NoError(t, err)
	for _, tok := range []string{"wrong", "hook-secret", "hook-secret"} {
		resp, err := gitlabtest.SendWebhook(t.Context(), url, gitlabtest.MergeRequestHook, body,
			gitlabtest.WebhookOptions{Token: tok, IdempotencyKey: "delivery-1"})
		require.NoError(t, err)
		want := map[string]int{"wrong": http.StatusUnauthorized, "hook-secret": http.StatusOK}[tok]
		if resp.StatusCode != want && resp.StatusCode != http.StatusAccepted {
			t.Errorf("delivery with token %q: status %d", tok, resp.StatusCode)
		}
	}
	require.Eventually(t, func() bool {
		is, _ := srv.Issue(7, 1)
		return len(is.Labels) > 0
	}, time.Minute, 10*time.Millisecond, "the bots handled the delivery")
	resp, err := http.Get(url + "/stats")
	require.NoError(t, err)
	var stats struct {
		Accepted, Duplicate, Rejected int64
		Intake                        struct{ Pending int64 }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&stats), "GET /stats")
	resp.Body.Close()
	assert.Equal(t, int64(1), stats.Accepted, "accepted in GET /stats")
	assert.Equal(t, int64(1), stats.Duplicate, "duplicates in GET /stats")
	assert.GreaterOrEqual(t, stats.Intake.Pending, int64(0), "stream depth in GET /stats")
	cancel()
	require.True(t, lines.Scan(), "summary line")
	assert.Equal(t, "gitlab-hooks: accepted 1, done 1, failed 0, duplicates 1, ignored 0, rejected 1, dropped 0, pending 0", lines.Text())
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}

	notes := srv.Notes(7, gitlabtest.MergeRequestNoteable, mr.IID)
	require.Len(t, notes, 1, "notes on the MR")
	assert.Contains(t, notes[0].Body, "source branch `12-fix-login` has `1.1.0`, target branch `main` has `1.0.0`")
	is, _ := srv.Issue(7, 1)
	assert.Equal(t, []string{"wf::Review"}, is.Labels, "closing issue #1")
	is, _ = srv.Issue(7, 2)
	assert.Empty(t, is.Labels, "unlinked issue #2")
}
