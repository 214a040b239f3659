// Package gitlabtest is a stateful in-memory GitLab REST v4 server on
// loopback, for testing code that talks to GitLab through client-go
// (gitlab.com/gitlab-org/api/client-go), plus a webhook sender that posts
// payloads with GitLab's real headers.
//
// The shortest useful program:
//
//	srv := gitlabtest.New()
//	defer srv.Close()
//	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})
//	c := srv.Client() // a *gitlab.Client authenticated as srv.BotUser()
//	is, _, err := c.Issues.CreateIssue(7, &gitlab.CreateIssueOptions{Title: gitlab.Ptr("flaky test")})
//	// srv.Issues(7) now holds the issue
//
// The server covers the endpoints opskit calls: projects (by ID and by
// URL-encoded path), the current user, issues (create, get, list with
// search/in/labels/state/iids/order_by/sort/created_after..., update with
// labels, add_labels, remove_labels and state_event), issue and merge request
// notes (list, get, create, update, delete, internal), merge requests
// (create, get, list, update, merge, closes_issues, related_issues),
// repository files (raw, JSON and HEAD, per ref), branches, commits (list
// with ref_name, including "A..B" ranges, path, since, until; get), compare,
// tags (list with order_by/sort/search, get, create, delete), project labels
// (list, get, create, delete) and markdown uploads (upload, download).
// Lists carry GitLab's offset pagination headers (X-Total, X-Total-Pages,
// X-Page, X-Per-Page, X-Next-Page, X-Prev-Page, Link), cap per_page at 100
// and, like GitLab, leave the totals out above 10,000 rows and for commits.
// Errors use GitLab's shapes: {"message":"404 Project Not Found"} and, for
// parameter validation, {"error":"title is missing"}. Label names are
// case-sensitive and labels named in an update are created when missing, as
// GitLab does; merging an MR closes the issues it closes ("Closes #12") in
// a background job (see below).
//
// Requests need a known token (as Private-Token, JOB-TOKEN or
// "Authorization: Bearer"); anything else answers 401
// {"message":"401 Unauthorized"}. Token belongs to BotUser, the identity
// Client uses. DeveloperToken belongs to Developer, the human who authors
// seeded issues and merge requests, so events built from them are not the
// bot's own; seeded notes are the bot's unless AuthorID says otherwise.
// AddUser adds further users; ClientFor acts as them.
//
// State is seeded and inspected through typed methods (AddProject,
// AddIssue, AddMergeRequest, SetFile, AddCommit, AddTag, Issues, Notes,
// Tags, Uploads, ...). IDs are global, IIDs count per project. Times come
// from a deterministic clock (see WithClock).
//
// Failures are injected with FailNext (the next n calls answer a status;
// 429 carries Retry-After), FailWhen (a predicate over the request),
// FailNextAfterApply and FailAfterApplyWhen (the call takes effect, then
// answers an error, which makes client-go's retried POSTs duplicate) and
// SetLatency. Requests returns every call received.
//
// AddHook registers a project webhook: API calls that change an issue,
// note, merge request or tag then deliver GitLab's event for it, with the
// calling user as "user" and "changes" filled in (WaitDeliveries,
// Deliveries), and keeps GitLab's auto-disable state per hook
// (HookStatuses; Redeliver resends like GitLab's "Resend request"). SendWebhook delivers a webhook the way GitLab does (X-Gitlab-Event,
// X-Gitlab-Token, Idempotency-Key, X-Gitlab-Event-UUID,
// X-Gitlab-Webhook-UUID, X-Gitlab-Instance, User-Agent and, with a
// SigningToken, Standard Webhooks signing). MergeRequestEvent, IssueEvent
// and NoteEvent build payloads from the server's state on top of the recorded
// payloads that Fixture returns.
//
// # Behaviours that follow GitLab
//
// The fake does by default what GitLab.com does, where code that works on
// the fake could otherwise fail on GitLab. Each behaviour, the GitLab source
// it follows (gitlab-org/gitlab) and how to switch it:
//
//	behaviour                                   | GitLab source                                          | switch
//	--------------------------------------------+--------------------------------------------------------+-----------------------------
//	merge closes "Closes #N" issues in a        | app/services/merge_requests/post_merge_service.rb      | WithMergeCloseOrder
//	background job, as the merging user; merge  | (close_issues, execute_hooks), app/workers/            | (CloseAfterMerge,
//	and close deliveries in either order        | merge_requests/close_issue_worker.rb                   | CloseBeforeMerge; default
//	(default: random per merge); WaitDeliveries |                                                        | CloseOrderRandom)
//	waits for the job                           |                                                        |
//	closes_issues reads title, description and  | app/models/merge_request.rb (closes_issues,            | Project.AutocloseDisabled
//	commit messages; empty unless the target is | visible_closing_issues_for)                            |
//	the default branch and auto-close is on     |                                                        |
//	merge_user/merged_by is the merging user;   | lib/api/entities/resource_state_event.rb               | (none)
//	resource_state_events name the closing MR   |                                                        |
//	issue search is full-text: ANDed prefix     | app/models/concerns/pg_full_text_searchable.rb,        | WithSearchMode
//	words, "phrases", tags and HTML comments    | app/finders/issuable_finder.rb; PostgreSQL's parser    | (SearchSubstring)
//	not indexed, 50+ char [A-Za-z0-9+/@] words  | (wparser_def.c: comments are tag tokens)               |
//	dropped, text past 1 MiB cut, in= fields;   |                                                        |
//	no stemming in the fake                     |                                                        |
//	issue and MR lists with search are          | lib/api/helpers.rb (validate_search_rate_limit!),      | WithSearchRateLimit (0 off),
//	rate-limited per user, 30/minute: 429       | lib/api/helpers/rate_limiter.rb,                       | WithWallClock
//	{"message":{"error":...}} with RateLimit-*  | Gitlab::ApplicationRateLimiter (search_rate_limit)     |
//	and Retry-After                             |                                                        |
//	webhooks: no automatic retry; Redeliver     | app/services/web_hook_service.rb,                      | WithWallClock; HookStatuses
//	keeps Idempotency-Key, fresh                | app/services/web_hooks/log_execution_service.rb,       | shows the state
//	X-Gitlab-Webhook-UUID; non-2xx/3xx or error | app/models/concerns/web_hooks/auto_disabling.rb        |
//	counts; 4th failure disables for 1 min      |                                                        |
//	doubling to 24 h, 40th for good             |                                                        |
//	recursion detection: events caused by a     | lib/gitlab/middleware/webhook_recursion_detection.rb,  | (none: send no
//	call carrying a delivery's                  | lib/gitlab/web_hooks/recursion_detection.rb            | X-Gitlab-Event-UUID)
//	X-Gitlab-Event-UUID skip that hook          |                                                        |
//	issue web_url is /-/work_items/N            | GitLab.com since 2026 (work items)                     | WithLegacyIssueURLs
//	scoped labels exclusive (Premium)           | doc/user/project/labels.md (scoped labels)             | WithScopedLabels (off:
//	                                            |                                                        | Free, the default)
//	editing an MR title recomputes draft, and   | MergeRequest::DRAFT_REGEX (app/models/merge_request.rb)| (none)
//	changes.draft reports it                    |                                                        |
//	protected tags: 400 "You are not allowed to | lib/gitlab/checks/tag_check.rb,                        | ProtectTag
//	create this tag as it is protected."        | app/services/tags/create_service.rb                    |
//	titles over 255 characters: 400             | Issuable title validation (maximum 255)                | (none)
//	system notes in note lists (title and       | app/services/system_note_service.rb                    | (none: skip n.System)
//	description edits, "mentioned in merge      |                                                        |
//	request !N")                                |                                                        |
//	note pages can be short while more follow   | lib/api/notes.rb (paginate, then readable_by?)         | Note.VisibleTo seeds one
//	(unreadable notes dropped after paging)     |                                                        |
//	upload limit 100 MiB                        | application setting max_attachment_size                | WithMaxUploadSize
//
// # Testing
//
// gitlabtest is itself the test package for gitlabx: import it only from
// _test.go files, from examples and from the tour (New works outside tests;
// the caller must Close). NewServer(t) registers Close with t.Cleanup. Its
// own tests (go test ./gitlabx/gitlabtest/) exercise every endpoint through
// client-go v1.46.0, compare answers with GitLab's documented examples
// (testdata/api) and payloads with the recorded webhooks in
// internal/fixtures; `make bench-gitlabtest` runs its benchmarks.
//
// TestVersionSource checks a gitlabx.VersionSource of your own against the
// contract gitlabx.VersionCheck relies on.
package gitlabtest
