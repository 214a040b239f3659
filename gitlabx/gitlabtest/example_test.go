package gitlabtest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// report files an issue, or comments on the open one with the same title:
// the kind of code gitlabtest is for.
func report(ctx context.Context, c *gitlab.Client, project int64, title string) error {
	open, _, err := c.Issues.ListProjectIssues(project, &gitlab.ListProjectIssuesOptions{
		State: gitlab.Ptr("opened"), Search: gitlab.Ptr(title), In: gitlab.Ptr("title"),
	}, gitlab.WithContext(ctx))
	if err != nil {
		return err
	}
	if len(open) > 0 {
		_, _, err = c.Notes.CreateIssueNote(project, open[0].IID, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("seen again")}, gitlab.WithContext(ctx))
		return err
	}
	_, _, err = c.Issues.CreateIssue(project, &gitlab.CreateIssueOptions{Title: gitlab.Ptr(title), Labels: &gitlab.LabelOptions{"race"}}, gitlab.WithContext(ctx))
	return err
}

func Example() {
	srv := gitlabtest.New() // in a test: gitlabtest.NewServer(t)
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})

	ctx := context.Background()
	for range 2 {
		if err := report(ctx, srv.Client(), 7, "data race in cache"); err != nil {
			fmt.Println(err)
			return
		}
	}
	for _, is := range srv.Issues(7) {
		fmt.Printf("#%d %s %v, %d note(s)\n", is.IID, is.Title, is.Labels, len(srv.Notes(7, gitlabtest.IssueNoteable, is.IID)))
	}
	// Output:
	// #1 data race in cache [race], 1 note(s)
}

func ExampleServer_FailNext() {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})

	srv.FailNext(2, http.StatusInternalServerError)
	p, _, err := srv.Client().Projects.GetProject("ops/app", nil) // client-go retries 5xx
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range srv.Requests() {
		fmt.Println(r.Method, r.RawPath, r.Status)
	}
	fmt.Println(p.PathWithNamespace)
	// Output:
	// GET /api/v4/projects/ops%2Fapp 500
	// GET /api/v4/projects/ops%2Fapp 500
	// GET /api/v4/projects/ops%2Fapp 200
	// ops/app
}

func ExampleSendWebhook() {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	srv.SetFile(7, "12-fix-login", "VERSION", []byte("1.2.4\n"))
	mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "Fix login", SourceBranch: "12-fix-login"})

	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ev, err := gitlab.ParseWebhook(gitlab.HookEventType(r), b)
		if me, ok := ev.(*gitlab.MergeEvent); ok && err == nil && r.Header.Get("X-Gitlab-Token") == "s3cret" {
			fmt.Printf("%s: !%d %s (%s)\n", r.Header.Get("X-Gitlab-Event"), me.ObjectAttributes.IID, me.ObjectAttributes.Action, me.ObjectAttributes.SourceBranch)
		}
	}))
	defer hook.Close()

	body, err := srv.MergeRequestEvent(7, mr.IID, gitlabtest.EventOptions{Action: "open"})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := gitlabtest.SendWebhook(context.Background(), hook.URL, gitlabtest.MergeRequestHook, body, gitlabtest.WebhookOptions{Token: "s3cret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode)
	// Output:
	// Merge Request Hook: !1 open (12-fix-login)
	// 200
}

func ExampleServer_AddHook() {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
	srv.AddIssue(7, gitlabtest.Issue{Title: "Login broken", Labels: []string{"workflow::To Do"}})

	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer receiver.Close()
	srv.AddHook(7, gitlabtest.Hook{URL: receiver.URL, Options: gitlabtest.WebhookOptions{Token: "s3cret"}})

	// The bot moves the issue; GitLab (here, the fake) reports the change.
	_, _, err := srv.Client().Issues.UpdateIssue(7, 1, &gitlab.UpdateIssueOptions{
		AddLabels: &gitlab.LabelOptions{"workflow::In Review"}, RemoveLabels: &gitlab.LabelOptions{"workflow::To Do"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.WaitDeliveries(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range srv.Deliveries() {
		ev, err := gitlab.ParseWebhook(gitlab.EventType(d.Event), d.Body)
		if err != nil {
			fmt.Println(err)
			return
		}
		ie := ev.(*gitlab.IssueEvent)
		fmt.Printf("%s %s by %s: %s -> %s (status %d)\n", d.Event, ie.ObjectAttributes.Action, ie.User.Username,
			ie.Changes.Labels.Previous[0].Title, ie.Changes.Labels.Current[0].Title, d.Status)
	}
	// Output:
	// Issue Hook update by opskit-bot: workflow::To Do -> workflow::In Review (status 200)
}

// ExampleWithMergeCloseOrder pins the order in which GitLab's merge event
// and the close event of a "Closes #1" issue arrive; run a bot's test once
// per order to cover both.
func ExampleWithMergeCloseOrder() {
	for _, order := range []gitlabtest.MergeCloseOrder{gitlabtest.CloseAfterMerge, gitlabtest.CloseBeforeMerge} {
		srv := gitlabtest.New(gitlabtest.WithMergeCloseOrder(order))
		srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
		srv.SetFile(7, "fix", "VERSION", []byte("2\n"))
		srv.AddIssue(7, gitlabtest.Issue{Title: "Login broken"})
		mr := srv.AddMergeRequest(7, gitlabtest.MergeRequest{Title: "Fix login", Description: "Closes #1", SourceBranch: "fix"})
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			is, _ := srv.Issue(7, 1)
			fmt.Printf("%s arrives; #1 is %s\n", r.Header.Get("X-Gitlab-Event"), is.State)
		}))
		srv.AddHook(7, gitlabtest.Hook{URL: receiver.URL})
		srv.MergeMergeRequest(7, mr.IID)
		if err := srv.WaitDeliveries(context.Background()); err != nil {
			fmt.Println(err)
		}
		receiver.Close()
		srv.Close()
	}
	// Output:
	// Merge Request Hook arrives; #1 is opened
	// Issue Hook arrives; #1 is closed
	// Issue Hook arrives; #1 is closed
	// Merge Request Hook arrives; #1 is closed
}
