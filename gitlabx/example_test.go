package gitlabx_test

import (
	"context"
	"fmt"
	"net/http/httptest"

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
	hooks.Shutdown(context.Background()) // waits for the bots to finish

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
