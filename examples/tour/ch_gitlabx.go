package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// gitlabxChapter is the tour's gitlabx chapter.
func gitlabxChapter() chapter {
	return chapter{
		name:    "gitlabx",
		summary: "webhooks: version check on a merge request, issue labels through the board",
		run:     runGitlabx,
	}
}

func runGitlabx(ctx context.Context, n *narrator) error {
	const pid = 1
	// GitLab closes "Closes #12" issues in a background job after the merge,
	// so the issue's close event and the MR's merge event come in either
	// order; the tour pins the close first (gitlabx's tests cover both).
	gl := gitlabtest.New(gitlabtest.WithMergeCloseOrder(gitlabtest.CloseBeforeMerge))
	defer gl.Close()
	gl.AddProject(gitlabtest.Project{ID: pid, Path: "shop/web"})
	for _, s := range gitlabx.DefaultStates() {
		gl.AddLabel(pid, "workflow::"+string(s))
	}
	gl.SetFile(pid, "main", "VERSION", []byte("1.4.0\n"))
	gl.SetFile(pid, "12-fix-login", "VERSION", []byte("1.3.9\n"))
	const dev = 42
	gl.AddIssue(pid, gitlabtest.Issue{IID: 12, Title: "Login fails with SSO", AuthorID: dev})
	mr := gl.AddMergeRequest(pid, gitlabtest.MergeRequest{
		Title: "Fix SSO login", Description: "Closes #12", SourceBranch: "12-fix-login", ClosesIssues: []int64{12}, AuthorID: dev,
	})
	n.Say("A fake GitLab holds shop/web: VERSION is 1.4.0 on main, 1.3.9 on branch 12-fix-login, and issue #%d %q.", 12, "Login fails with SSO")

	client := gl.Client()
	hooks, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: "tour-hook-secret", BotUserID: gl.BotUser().ID})
	if err != nil {
		return err
	}
	check, err := gitlabx.NewVersionCheck(client, gitlabx.VersionCheckConfig{})
	if err != nil {
		return err
	}
	board, err := gitlabx.NewLabelMachine(client, gitlabx.LabelMachineConfig{Scope: "workflow", ReopenOnMerge: true})
	if err != nil {
		return err
	}
	check.Register(hooks)
	board.Register(hooks)
	// Handlers of one delivery run in order, so this last one says when the
	// bots have finished with it.
	handled := make(chan struct{}, 1)
	hooks.OnMergeRequest(func(context.Context, *gitlab.MergeEvent) error { handled <- struct{}{}; return nil })
	hooks.OnIssue(func(context.Context, *gitlab.IssueEvent) error { handled <- struct{}{}; return nil })
	srv := httptest.NewServer(hooks)
	defer srv.Close()
	n.Say("gitlabx.Hooks listens on loopback with the version check and the label machine (scoped workflow:: labels).")

	deliver := func(event string, body []byte, key string) (int, error) {
		resp, err := gitlabtest.SendWebhook(ctx, srv.URL, event, body,
			gitlabtest.WebhookOptions{Token: "tour-hook-secret", IdempotencyKey: key})
		if err != nil {
			return 0, err
		}
		if resp.StatusCode == http.StatusAccepted {
			select {
			case <-handled:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return resp.StatusCode, nil
	}
	send := func(action, oldrev, key string) (int, error) {
		body, err := gl.MergeRequestEvent(pid, mr.IID, gitlabtest.EventOptions{Action: action, OldRev: oldrev, UserID: dev})
		if err != nil {
			return 0, err
		}
		return deliver(gitlabtest.MergeRequestHook, body, key)
	}
	notes := func() ([]gitlabtest.Note, string) {
		ns := gl.Notes(pid, gitlabtest.MergeRequestNoteable, mr.IID)
		if len(ns) == 0 {
			return ns, ""
		}
		_, text, _ := strings.Cut(ns[len(ns)-1].Body, "\n")
		return ns, text
	}
	issue := func() string {
		is, _ := gl.Issue(pid, 12)
		if is.State == "closed" {
			return "closed"
		}
		return strings.Join(is.Labels, ", ")
	}

	if _, err := send("open", "", "delivery-open"); err != nil {
		return err
	}
	ns, text := notes()
	n.Say("MR !%d opens: %d note on it: %s", mr.IID, len(ns), text)
	n.Say("Issue #12 is linked by \"Closes #12\" and the branch name; its label is now: %s", issue())
	if len(ns) != 1 || !strings.Contains(text, "Version mismatch") || issue() != "workflow::In Review" {
		return fmt.Errorf("gitlabx: after open: %d notes, issue labels %q", len(ns), issue())
	}

	status, err := send("open", "", "delivery-open")
	if err != nil {
		return err
	}
	ns, _ = notes()
	n.Say("GitLab redelivers the same event: answered %d, still %d note.", status, len(ns))
	if len(ns) != 1 {
		return errors.New("the redelivery added a note")
	}

	gl.SetFile(pid, "12-fix-login", "VERSION", []byte("1.4.0\n"))
	if _, err := send("update", "0000000000000000000000000000000000000001", "delivery-push"); err != nil {
		return err
	}
	ns, text = notes()
	n.Say("The developer pushes VERSION 1.4.0: the same note is edited (%d note): %s", len(ns), text)
	if len(ns) != 1 || !strings.Contains(text, "Versions match") {
		return fmt.Errorf("gitlabx: after the fix: %d notes, last says %q", len(ns), text)
	}

	// GitLab merges and, in a background job, closes #12 ("Closes #12");
	// here the issue's close event arrives before the MR's merge event.
	gl.MergeMergeRequest(pid, mr.IID)
	body, err := gl.IssueEvent(pid, 12, gitlabtest.EventOptions{Action: "close", UserID: dev})
	if err != nil {
		return err
	}
	if _, err := deliver(gitlabtest.IssueHook, body, "delivery-close"); err != nil {
		return err
	}
	is, _ := gl.Issue(pid, 12)
	n.Say("MR !%d is merged; GitLab closes issue #12 (\"Closes #12\") and its close event comes first: the state events say !%d closed it, so the bot reopens it at %s (%s), ready for QA.", mr.IID, mr.IID, issue(), is.State)
	if _, err := send("merge", "", "delivery-merge"); err != nil {
		return err
	}
	n.Say("The merge event follows: issue #12 is already at %s, nothing to do (had it come first, the bot would have moved #12 there and reopened it on the close event).", issue())

	if err := hooks.Shutdown(ctx); err != nil {
		return err
	}
	s := hooks.Stats()
	n.Say("Shutdown drained the queue: %d deliveries accepted, %d done, %d duplicate, %d failed.", s.Accepted, s.Done, s.Duplicate, s.Failed)
	if ns, _ := notes(); len(ns) != 1 || issue() != "workflow::To Test" || s.Failed != 0 {
		return fmt.Errorf("gitlabx: unexpected end state: %d notes, issue labels %q, %d failed", len(ns), issue(), s.Failed)
	}
	return nil
}
