package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

var listenURL = regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+`)

// startFlooded runs gitlab-hooks with the in-memory intake and one worker
// against a fake GitLab whose every call takes 20 ms and whose project 7
// has n branches b0..b(n-1) with a new VERSION, hooked to the program.
// open(i) opens the merge request of branch bi as a developer; done gets
// run's result once cancel stops it.
func startFlooded(t *testing.T, n int) (srv *gitlabtest.Server, open func(i int), done chan error, cancel context.CancelFunc) {
	t.Helper()
	srv = gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	srv.SetFile(7, "main", "VERSION", []byte("1.0.0\n"))
	for i := range n {
		srv.SetFile(7, fmt.Sprintf("b%d", i), "VERSION", []byte("1.1.0\n"))
	}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	pr, pw := io.Pipe()
	done = make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-gitlab-url", srv.URL(),
			"-token-file", writeFile(t, "token", srv.Token()), "-secret-file", writeFile(t, "secret", "hook-secret"),
			"-intake", "memory", "-workers", "1"}, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url string
	for url == "" && lines.Scan() {
		url = listenURL.FindString(lines.Text())
	}
	require.NotEmpty(t, url, "listening address")
	go io.Copy(io.Discard, pr)
	srv.AddHook(7, gitlabtest.Hook{URL: url, Options: gitlabtest.WebhookOptions{Token: "hook-secret"}})
	srv.SetLatency(20 * time.Millisecond)
	dev := srv.ClientFor(gitlabtest.DeveloperToken)
	open = func(i int) {
		_, _, err := dev.MergeRequests.CreateMergeRequest(7, &gitlab.CreateMergeRequestOptions{
			Title: gitlab.Ptr(fmt.Sprintf("change %d", i)), SourceBranch: gitlab.Ptr(fmt.Sprintf("b%d", i)), TargetBranch: gitlab.Ptr("main"),
		})
		require.NoError(t, err)
	}
	return srv, open, done, cancel
}

// TestBusyReceiverNeverDisabled (issue 15): gitlab-hooks with the in-memory
// intake and one worker, against a slow GitLab (20 ms a call), gets a flood
// of the fake GitLab's own webhook deliveries (a developer opens 40 merge
// requests; the bots' own notes and labels come back as events too), under
// GitLab's auto-disable rules. It is stopped while it is still working
// through them. Every delivery is answered 2xx, so the hook has no failure
// and was never disabled, and the stop finishes what was accepted.
func TestBusyReceiverNeverDisabled(t *testing.T) {
	const n = 40
	srv, open, done, cancel := startFlooded(t, n)
	for i := range n {
		open(i)
	}
	require.NoError(t, srv.WaitDeliveries(t.Context()), "the fake's deliveries")
	// Stop it while the one worker is still busy with the flood (each MR
	// takes the bots several 20 ms calls).
	handled := 0
	for iid := int64(1); iid <= n; iid++ {
		handled += len(srv.Notes(7, gitlabtest.MergeRequestNoteable, iid))
	}
	require.Less(t, handled, n, "the receiver was not busy when it was stopped")
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
	require.NoError(t, srv.WaitDeliveries(t.Context()), "events caused while it stopped")

	var opens int
	for i, d := range srv.Deliveries() {
		require.NoError(t, d.Err, "delivery %d (%s)", i, d.Event)
		assert.True(t, d.Status >= 200 && d.Status < 300, "delivery %d (%s): status %d", i, d.Event, d.Status)
		if d.Event == gitlabtest.MergeRequestHook {
			opens++
		}
	}
	assert.Equal(t, n, opens, "merge request deliveries")
	st := srv.HookStatuses(7)
	require.Len(t, st, 1)
	assert.Equal(t, gitlabtest.HookExecutable, st[0].State, "hook state")
	assert.Zero(t, st[0].RecentFailures, "failures GitLab counted toward disabling the hook")
	assert.Zero(t, st[0].Skipped, "events GitLab did not deliver")
	notes := 0
	for iid := int64(1); iid <= n; iid++ {
		for _, note := range srv.Notes(7, gitlabtest.MergeRequestNoteable, iid) {
			if note.AuthorID == srv.BotUser().ID {
				notes++
			}
		}
	}
	assert.Equal(t, n, notes, "version notes: the stop finishes the accepted deliveries")
}

// TestStopDuringFloodNeverDisabled: GitLab keeps sending while the program
// stops. Deliveries that arrive while it finishes the accepted ones must
// still be answered 2xx (a refused connection counts toward disabling the
// hook like a 5xx does): the listener stays up until the intake has shut
// down. With the in-memory intake those late deliveries are dropped, which
// the README says; with JetStream they are stored for the next start.
func TestStopDuringFloodNeverDisabled(t *testing.T) {
	const n = 40
	srv, open, done, cancel := startFlooded(t, n)
	for i := range n / 2 {
		open(i)
	}
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	cancel() // the one worker has a queue of MRs to finish: the drain takes a while
	for i := n / 2; i < n; i++ {
		open(i) // GitLab does not know the program is stopping
	}
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	stillDraining := false
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("run: %v", err)
		}
	default:
		stillDraining = true
	}
	require.True(t, stillDraining, "the program had stopped before the second half of the flood; the test did not test the drain")
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
	for i, d := range srv.Deliveries() {
		assert.True(t, d.Err == nil && d.Status >= 200 && d.Status < 300, "delivery %d (%s): status %d, error %v", i, d.Event, d.Status, d.Err)
	}
	st := srv.HookStatuses(7)
	require.Len(t, st, 1)
	assert.Equal(t, gitlabtest.HookExecutable, st[0].State, "hook state")
	assert.Zero(t, st[0].RecentFailures, "failures GitLab counted toward disabling the hook")
}
