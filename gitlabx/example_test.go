package gitlabx_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// A merge request opens with a different version than its target branch:
// the version check leaves one warning, and the label machine moves the
// issue it closes to In Review.
func Example() {
	gl := gitlabtest.New()
	defer gl.Close()
	gl.AddProject(gitlabtest.Project{ID: 1, Path: "ops/app"})
	gl.AddLabel(1, "In Review")
	gl.SetFile(1, "main", "VERSION", []byte("2.0.0\n"))
	gl.SetFile(1, "fix", "VERSION", []byte("1.9.9\n"))
	gl.AddIssue(1, gitlabtest.Issue{Title: "crash on start", AuthorID: 5})
	mr := gl.AddMergeRequest(1, gitlabtest.MergeRequest{SourceBranch: "fix", ClosesIssues: []int64{1}, AuthorID: 5})

	hooks, _ := gitlabx.NewHooks(gitlabx.HooksConfig{Token: "hook-secret", BotUserID: gl.BotUser().ID})
	defer hooks.Shutdown(context.Background())
	check, _ := gitlabx.NewVersionCheck(gl.Client(), gitlabx.VersionCheckConfig{})
	board, _ := gitlabx.NewLabelMachine(gl.Client(), gitlabx.LabelMachineConfig{})
	check.Register(hooks)
	board.Register(hooks)
	srv := httptest.NewServer(hooks)
	defer srv.Close()

	body, _ := gl.MergeRequestEvent(1, mr.IID, gitlabtest.EventOptions{Action: "open"})
	resp, err := gitlabtest.SendWebhook(context.Background(), srv.URL, gitlabtest.MergeRequestHook, body,
		gitlabtest.WebhookOptions{Token: "hook-secret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("delivery:", resp.Status)
	hooks.Idle(context.Background()) // waits until the bots have handled every accepted delivery

	for _, n := range gl.Notes(1, gitlabtest.MergeRequestNoteable, mr.IID) {
		fmt.Println("note:", n.Body)
	}
	is, _ := gl.Issue(1, 1)
	fmt.Println("issue #1:", is.Labels)
	// Output:
	// delivery: 202 Accepted
	// note: <!-- opskit:version-check=version -->
	// :warning: **Version mismatch** in `VERSION`: source branch `fix` has `1.9.9`, target branch `main` has `2.0.0`.
	// issue #1: [In Review]
}

// Handlers accumulate: both run for every push, in registration order, and
// Idle waits for them without stopping the receiver.
func ExampleHooks_Idle() {
	hooks, _ := gitlabx.NewHooks(gitlabx.HooksConfig{Token: "hook-secret"})
	defer hooks.Shutdown(context.Background())
	var ran []string // handlers for one delivery run one after the other
	hooks.OnPush(func(_ context.Context, e *gitlab.PushEvent) error {
		ran = append(ran, "first handler: "+e.Ref)
		return nil
	})
	hooks.OnPush(func(_ context.Context, e *gitlab.PushEvent) error {
		ran = append(ran, "second handler: "+e.Ref)
		return nil
	})
	srv := httptest.NewServer(hooks)
	defer srv.Close()

	body, event, _ := gitlabtest.Fixture("push")
	resp, err := gitlabtest.SendWebhook(context.Background(), srv.URL, event, body, gitlabtest.WebhookOptions{Token: "hook-secret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("delivery:", resp.Status)
	hooks.Idle(context.Background())
	for _, r := range ran {
		fmt.Println(r)
	}
	fmt.Println("pending:", hooks.Stats().Intake.Pending)
	// Output:
	// delivery: 202 Accepted
	// first handler: refs/heads/master
	// second handler: refs/heads/master
	// pending: 0
}

// The receiver's metrics go on a registry of the caller's: here a push is
// delivered twice, and the redelivery is counted as a duplicate.
func ExampleNewMetrics() {
	reg := prometheus.NewRegistry() // never the global one
	m, err := gitlabx.NewMetrics(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	hooks, _ := gitlabx.NewHooks(gitlabx.HooksConfig{Token: "hook-secret", Metrics: m})
	defer hooks.Shutdown(context.Background())
	hooks.OnPush(func(context.Context, *gitlab.PushEvent) error { return nil })
	srv := httptest.NewServer(hooks)
	defer srv.Close()

	body, event, _ := gitlabtest.Fixture("push")
	for range 2 {
		resp, err := gitlabtest.SendWebhook(context.Background(), srv.URL, event, body,
			gitlabtest.WebhookOptions{Token: "hook-secret", IdempotencyKey: "delivery-1"})
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
	}
	hooks.Idle(context.Background())
	fams, _ := reg.Gather()
	for _, mf := range fams {
		for _, mt := range mf.GetMetric() {
			if mf.GetType() != dto.MetricType_COUNTER || mt.GetCounter().GetValue() == 0 {
				continue // show what moved
			}
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			fmt.Println(mf.GetName(), labels, mt.GetCounter().GetValue())
		}
	}
	// Output:
	// opskit_gitlabx_deliveries_total [answer=accepted event=Push Hook] 1
	// opskit_gitlabx_deliveries_total [answer=duplicate event=Push Hook] 1
	// opskit_gitlabx_duplicate_deliveries_total [] 1
}
