// Package gitlabx is the GitLab side of opskit's automation: a webhook
// receiver, a merge request version check, an issue label machine and an
// issue reporter, all calling GitLab through client-go
// (gitlab.com/gitlab-org/api/client-go).
//
//   - Hooks is an http.Handler for GitLab webhooks. It checks X-Gitlab-Token
//     in constant time (and, optionally, the Standard Webhooks signature),
//     answers at once and runs typed handlers (OnMergeRequest, OnIssue,
//     OnNote, OnPush, OnTagPush, OnPipeline) on a bounded worker pool, one
//     delivery at a time per merge request or issue. Redeliveries are dropped
//     by Idempotency-Key, and events caused by the bot itself are ignored.
//     Shutdown drains the queued work.
//   - VersionCheck warns on merge requests whose source and target branches
//     carry different versions (a VERSION file, a regexp over a file or
//     package.json), in exactly one note per MR, edited in place.
//   - LabelMachine moves the issues linked to a merge request across the
//     board (Open → To Do → In Development → In Review → To Test → Testing →
//     Closed) with one label update per issue, never backwards unless
//     configured, refusing labels that do not exist in the project. With
//     ReopenOnMerge, issues GitLab closes on merge end open at To Test in
//     either order of the merge and close events.
//   - IssueReporter files an issue for a finding, or comments on the issue
//     already filed for it, found again by its hidden marker. ReportRun
//     files a whole run (RaceReport turns a racelog.Race into a Report)
//     with a bounded number of API calls and no search: it lists the
//     issues carrying its label and authored by its own user once, trusts
//     no marker anyone else wrote, and can close issues whose problem was
//     not seen for CloseAfterRuns runs (off by default).
//
// Notes and issues written by opskit carry a hidden marker,
// <!-- opskit:<kind>=<value> -->, by which a retry or a re-run finds them
// instead of writing a second one.
//
// The shortest useful program serves both jobs:
//
//	client, _ := gitlab.NewClient(token, gitlab.WithBaseURL("https://gitlab.example.com"))
//	hooks, _ := gitlabx.NewHooks(gitlabx.HooksConfig{Token: gitlabx.Secret(hookToken)})
//	check, _ := gitlabx.NewVersionCheck(client, gitlabx.VersionCheckConfig{})
//	labels, _ := gitlabx.NewLabelMachine(client, gitlabx.LabelMachineConfig{})
//	check.Register(hooks)
//	labels.Register(hooks)
//	srv := &http.Server{Addr: ":8080", Handler: hooks}
//	go srv.ListenAndServe()
//	<-ctx.Done()
//	srv.Shutdown(context.Background())
//	hooks.Shutdown(context.Background())
//
// examples/gitlab-hooks is that program with flags.
//
// # Testing
//
// Package gitlabx/gitlabtest is an in-memory GitLab REST API on loopback,
// for your own bots' tests: add projects, files, merge requests, issues and
// labels, point client-go at it, inject failures and latency, send webhooks
// with GitLab's real headers with gitlabtest.SendWebhook, and read back the
// issues and notes.
package gitlabx
