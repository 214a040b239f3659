// Package gitlabx is the GitLab side of opskit's automation: a webhook
// receiver, a merge request version check, an issue label machine and an
// issue reporter, all calling GitLab through client-go
// (gitlab.com/gitlab-org/api/client-go).
//
//   - Hooks is an http.Handler for GitLab webhooks. It checks X-Gitlab-Token
//     in constant time (and, optionally, the Standard Webhooks signature),
//     answers as soon as its Intake has stored the delivery and runs typed
//     handlers (OnMergeRequest, OnIssue, OnNote, OnPush, OnTagPush,
//     OnPipeline), one delivery at a time per merge request or issue.
//     Handlers accumulate: each one registered for a kind runs, in
//     registration order. Redeliveries are dropped by their dedupe key (the
//     signed webhook-id when signing is on, else Idempotency-Key), and
//     events caused by the bot itself are ignored. Idle waits until every
//     accepted delivery has been handled; Shutdown drains the queued work.
//
// # Intake: what GitLab's answer promises
//
// GitLab counts every webhook answer outside 2xx, and every timeout, toward
// disabling the hook (4 failures in a row: disabled with a backoff of up to
// a day; 40: for good). Hooks therefore never answers an error for a
// condition of its own.
//
// The default Intake is an in-memory queue bounded by HooksConfig.QueueSize
// and MaxQueuedBytes (64 MiB). It is fast and needs nothing, but it is not
// durable: a crash loses what it holds, a Shutdown that gives up loses what
// it did not finish, and a delivery beyond its bounds or after Shutdown is
// answered 202 and dropped, with an error log record naming the event UUID
// (redeliver it from the webhook's Recent events in GitLab). Package
// gitlabx/jetstream is the durable Intake: a delivery is answered 202 only
// once NATS JetStream has stored it, and any number of replicas share the
// work, still one delivery at a time per merge request or issue. Your own
// Intake can be checked with gitlabx/intaketest.TestIntake.
//   - VersionCheck warns on merge requests whose source and target branches
//     carry different versions (a VERSION file, a regexp over a file or
//     package.json), in exactly one note per MR, edited in place. It finds
//     its note among the MR's own notes, never by a search, and skips
//     system notes and notes by other users.
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
//     no marker anyone else wrote nor any system note, and can close
//     issues whose problem was not seen for CloseAfterRuns runs (off by
//     default).
//
// # Metrics and traces
//
// HooksConfig.Metrics (built by NewMetrics on a registry you own; nil counts
// nothing) counts deliveries by event and answer, redeliveries dropped by
// their dedupe key, deliveries answered 202 but dropped, each handler's
// time and errors, and the Intake's depth, bytes and redeliveries (read
// from Hooks.Stats at each scrape):
//
//	reg := prometheus.NewRegistry()
//	m, _ := gitlabx.NewMetrics(reg)
//	hooks, _ := gitlabx.NewHooks(gitlabx.HooksConfig{Token: gitlabx.Secret(hookToken), Metrics: m, TracerProvider: tp})
//
// HooksConfig.TracerProvider (nil: none) opens a span per delivery handled,
// "gitlab webhook <event>" with attribute gitlab.event_uuid, and hands its
// context to the handlers: API calls made with RequestOptions(ctx) through
// a client whose transport is observe.NewTransport are its children, and
// the handler-failure log record carries its trace_id when the logger adds
// it (examples/internal/telemetry does).
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
// Hooks.Idle waits until every accepted delivery has been handled, so a test
// can send a webhook and then look at what the bots did. The metrics tests
// use prometheus/testutil (GatherAndLint included) and the spans an
// in-memory recorder (go.opentelemetry.io/otel/sdk/trace/tracetest).
//
// Package gitlabx/gitlabtest is an in-memory GitLab REST API on loopback,
// for your own bots' tests: add projects, files, merge requests, issues and
// labels, point client-go at it, inject failures and latency, send webhooks
// with GitLab's real headers with gitlabtest.SendWebhook, and read back the
// issues and notes.
package gitlabx
