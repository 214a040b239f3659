package gitlabx_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// board is a fake project 7 with the workflow labels (scoped when scope is
// set) and issues #1..#n, all open and unlabelled.
func board(t *testing.T, scope string, n int) *gitlabtest.Server {
	t.Helper()
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: proj, Path: "ops/app"})
	for _, s := range gitlabx.DefaultStates() {
		l := string(s)
		if scope != "" {
			l = scope + "::" + l
		}
		srv.AddLabel(proj, l)
	}
	srv.AddLabel(proj, "bug")
	for i := 1; i <= n; i++ {
		srv.AddIssue(proj, gitlabtest.Issue{Title: fmt.Sprintf("issue %d", i), AuthorID: 42})
	}
	return srv
}

func issueLabels(t *testing.T, srv *gitlabtest.Server, iid int64) ([]string, string) {
	t.Helper()
	is, ok := srv.Issue(proj, iid)
	require.True(t, ok, "issue #%d exists", iid)
	return is.Labels, is.State
}

// issueWrites counts the PUTs to each issue.
func issueWrites(srv *gitlabtest.Server) map[string]int {
	n := map[string]int{}
	for _, r := range srv.Requests() {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/issues/") {
			n[r.Path]++
		}
	}
	return n
}

func newMachine(t *testing.T, srv *gitlabtest.Server, cfg gitlabx.LabelMachineConfig) *gitlabx.LabelMachine {
	t.Helper()
	m, err := gitlabx.NewLabelMachine(srv.Client(), cfg)
	require.NoError(t, err)
	return m
}

// sendMR delivers MR events to a Hooks running m and waits for the work.
func sendMR(t *testing.T, srv *gitlabtest.Server, m *gitlabx.LabelMachine, iid int64, actions ...gitlabtest.EventOptions) *gitlabx.Hooks {
	t.Helper()
	h := newHooks(t, gitlabx.HooksConfig{BotUserID: srv.BotUser().ID, RetryBackoff: time.Millisecond})
	m.Register(h)
	for i, o := range actions {
		if o.UserID == 0 {
			o.UserID = 42 // a developer, not the bot (whose events Hooks ignores)
		}
		body, err := srv.MergeRequestEvent(proj, iid, o)
		require.NoError(t, err)
		resp := deliver(h, gitlabtest.MergeRequestHook, body, "Idempotency-Key", fmt.Sprintf("mr-%d-%d", iid, i))
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "delivery %d (%s)", i, o.Action)
	}
	require.NoError(t, h.Shutdown(t.Context()))
	return h
}

func TestLabelMachineMovesLinkedIssues(t *testing.T) {
	tests := []struct {
		name    string
		scope   string
		actions []gitlabtest.EventOptions
		want    string // the one workflow label each linked issue ends with
	}{
		{"opened", "", []gitlabtest.EventOptions{{Action: "open"}}, "In Review"},
		{"reopened", "", []gitlabtest.EventOptions{{Action: "reopen"}}, "In Review"},
		{"marked ready", "", []gitlabtest.EventOptions{{Action: "update", Changes: map[string]any{"draft": map[string]any{"previous": true, "current": false}}}}, "In Review"},
		{"merged", "", []gitlabtest.EventOptions{{Action: "open"}, {Action: "merge"}}, "To Test"},
		{"scoped labels", "workflow", []gitlabtest.EventOptions{{Action: "open"}, {Action: "merge"}}, "workflow::To Test"},
		{"update before open", "", []gitlabtest.EventOptions{{Action: "update", OldRev: "abc"}, {Action: "open"}}, "In Review"},
		{"merge before open", "", []gitlabtest.EventOptions{{Action: "merge"}, {Action: "open"}}, "To Test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := board(t, tt.scope, 5)
			// #1 closes, #2 is related, #3 in the title, #4 in the description, #5 by the branch name.
			mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{
				Title: "Fix login (#3)", Description: "Also see #4 and #99 (no such issue), but not other/app#2 or !3.",
				SourceBranch: "5-fix-login", ClosesIssues: []int64{1}, RelatedIssues: []int64{2}, AuthorID: 42,
			})
			m := newMachine(t, srv, gitlabx.LabelMachineConfig{Scope: tt.scope})
			h := sendMR(t, srv, m, mr.IID, tt.actions...)
			assert.Zero(t, h.Stats().Failed, "failed deliveries")
			for iid := int64(1); iid <= 5; iid++ {
				labels, _ := issueLabels(t, srv, iid)
				assert.Equal(t, []string{tt.want}, labels, "labels of #%d", iid)
			}
		})
	}
}

func TestLabelMachineOneUpdatePerMove(t *testing.T) {
	srv := board(t, "", 1)
	srv.AddIssue(proj, gitlabtest.Issue{Title: "labelled", Labels: []string{"bug", "To Do", "In Development"}})
	mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{Title: "Fix #2", SourceBranch: "fix"})
	m := newMachine(t, srv, gitlabx.LabelMachineConfig{})
	srv.ResetRequests()
	sendMR(t, srv, m, mr.IID, gitlabtest.EventOptions{Action: "open"})
	labels, _ := issueLabels(t, srv, 2)
	assert.Equal(t, []string{"In Review", "bug"}, labels, "non-workflow labels are kept, one workflow label is left")
	var puts []gitlabtest.Request
	for _, r := range srv.Requests() {
		if r.Method == http.MethodPut {
			puts = append(puts, r)
		}
	}
	require.Len(t, puts, 1, "one update")
	body := string(puts[0].Body)
	assert.Contains(t, body, `"add_labels":"In Review"`)
	for _, l := range []string{"To Do", "In Development", "To Test", "Testing"} {
		assert.Contains(t, body, l, "remove_labels covers %q", l)
	}
	// A redelivery or a repeat moves nothing.
	srv.ResetRequests()
	sendMR(t, srv, m, mr.IID, gitlabtest.EventOptions{Action: "reopen"})
	assert.Empty(t, issueWrites(srv), "updates when the issue is already there")
}

func TestLabelMachineNeverBackwards(t *testing.T) {
	tests := []struct {
		name  string
		allow bool
		want  string
	}{
		{"default", false, "Testing"},
		{"allowed", true, "In Review"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := board(t, "", 0)
			srv.AddIssue(proj, gitlabtest.Issue{Title: "in testing", Labels: []string{"Testing"}})
			mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{SourceBranch: "1-again"})
			var seen []gitlabx.Transition
			var mu sync.Mutex
			m := newMachine(t, srv, gitlabx.LabelMachineConfig{AllowBackwards: tt.allow, OnTransition: func(tr gitlabx.Transition) {
				mu.Lock()
				seen = append(seen, tr)
				mu.Unlock()
			}})
			sendMR(t, srv, m, mr.IID, gitlabtest.EventOptions{Action: "reopen"})
			labels, _ := issueLabels(t, srv, 1)
			assert.Equal(t, []string{tt.want}, labels)
			require.Len(t, seen, 1)
			if !tt.allow {
				assert.Equal(t, "would move backwards", seen[0].Skipped)
			}
		})
	}
}

func TestLabelMachineRefusesMissingLabel(t *testing.T) {
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: proj, Path: "ops/app"})
	srv.AddLabel(proj, "In Reveiw") // misspelt on purpose
	srv.AddIssue(proj, gitlabtest.Issue{Title: "x"})
	m := newMachine(t, srv, gitlabx.LabelMachineConfig{})
	_, err := m.Move(t.Context(), proj, 1, gitlabx.StateInReview)
	require.ErrorIs(t, err, gitlabx.ErrLabelMissing)
	assert.ErrorContains(t, err, `"In Review"`)
	assert.Empty(t, issueWrites(srv), "no update was sent")
	labels, _ := issueLabels(t, srv, 1)
	assert.Empty(t, labels)
	assert.NotContains(t, labelNames(srv), "In Review", "the label was not created")

	// Through Hooks the delivery fails (and is not retried: it is permanent).
	mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{SourceBranch: "1-x"})
	h := sendMR(t, srv, m, mr.IID, gitlabtest.EventOptions{Action: "open"})
	assert.Equal(t, int64(1), h.Stats().Failed)
}

func labelNames(srv *gitlabtest.Server) []string {
	var out []string
	for _, l := range srv.Labels(proj) {
		out = append(out, l.Name)
	}
	return out
}

func TestLabelMachineIssueClosed(t *testing.T) {
	srv := board(t, "", 0)
	srv.AddIssue(proj, gitlabtest.Issue{Title: "done", Labels: []string{"Testing", "bug"}, State: "closed"})
	srv.AddIssue(proj, gitlabtest.Issue{Title: "open", Labels: []string{"Testing"}})
	m := newMachine(t, srv, gitlabx.LabelMachineConfig{})
	h := newHooks(t, gitlabx.HooksConfig{})
	m.Register(h)
	for _, iid := range []int64{1, 2} {
		body, err := srv.IssueEvent(proj, iid, gitlabtest.EventOptions{Action: "close"})
		require.NoError(t, err)
		deliver(h, gitlabtest.IssueHook, body)
	}
	require.NoError(t, h.Shutdown(t.Context()))
	labels, _ := issueLabels(t, srv, 1)
	assert.Equal(t, []string{"bug"}, labels, "closed issue loses its workflow labels only")
	labels, _ = issueLabels(t, srv, 2)
	assert.Equal(t, []string{"Testing"}, labels, "an issue that is open again is left alone")
}

func TestLabelMachineReopenOnMerge(t *testing.T) {
	tests := []struct {
		name      string
		reopen    bool
		wantState string
		wantLabel []string
	}{
		{"reopens at To Test", true, "opened", []string{"To Test"}},
		{"leaves it closed", false, "closed", []string{"In Review"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := board(t, "", 0)
			// GitLab closed #1 when the MR that says "Closes #1" merged; #2 was
			// closed long ago and is only mentioned.
			srv.AddIssue(proj, gitlabtest.Issue{Title: "fixed", Labels: []string{"In Review"}, State: "closed"})
			srv.AddIssue(proj, gitlabtest.Issue{Title: "old", State: "closed"})
			mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{Description: "Closes #1, see #2", SourceBranch: "fix", ClosesIssues: []int64{1}, State: "merged"})
			m := newMachine(t, srv, gitlabx.LabelMachineConfig{ReopenOnMerge: tt.reopen})
			sendMR(t, srv, m, mr.IID, gitlabtest.EventOptions{Action: "merge"})
			labels, state := issueLabels(t, srv, 1)
			assert.Equal(t, tt.wantState, state, "state of #1")
			assert.Equal(t, tt.wantLabel, labels, "labels of #1")
			labels, state = issueLabels(t, srv, 2)
			assert.Equal(t, "closed", state, "#2 is not a closing issue")
			assert.Empty(t, labels)
		})
	}
}

func TestLabelMachineFiftyIssues(t *testing.T) {
	srv := board(t, "", 50)
	var closes []int64
	for i := int64(1); i <= 50; i++ {
		closes = append(closes, i)
	}
	mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{SourceBranch: "big", ClosesIssues: closes})
	m := newMachine(t, srv, gitlabx.LabelMachineConfig{})
	srv.ResetRequests()
	sendMR(t, srv, m, mr.IID, gitlabtest.EventOptions{Action: "open"})
	writes := issueWrites(srv)
	assert.Len(t, writes, 50, "issues updated")
	for path, n := range writes {
		assert.Equal(t, 1, n, "updates of %s", path)
	}
	for i := int64(1); i <= 50; i++ {
		labels, _ := issueLabels(t, srv, i)
		assert.Equal(t, []string{"In Review"}, labels, "#%d", i)
	}
}

func TestLabelMachineRecoversFromOutage(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := board(t, "", 3)
			srv.SetRetryAfter(0)
			mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{Description: "#1 #2 #3", SourceBranch: "fix"})
			// Issue #2's update fails more often than client-go retries.
			var mu sync.Mutex
			fails := 0
			srv.FailWhen(func(r *http.Request) (int, bool) {
				mu.Lock()
				defer mu.Unlock()
				if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/issues/2") && fails < 8 {
					fails++
					return status, true
				}
				return 0, false
			})
			m := newMachine(t, srv, gitlabx.LabelMachineConfig{})
			h := sendMR(t, srv, m, mr.IID, gitlabtest.EventOptions{Action: "open"})
			assert.Equal(t, 8, fails, "injected failures")
			assert.Equal(t, int64(0), h.Stats().Failed, "the delivery succeeded after the outage")
			for iid := int64(1); iid <= 3; iid++ {
				labels, _ := issueLabels(t, srv, iid)
				assert.Equal(t, []string{"In Review"}, labels, "#%d", iid)
			}
		})
	}
}

func TestLabelMachineDraftAndClose(t *testing.T) {
	tests := []struct {
		name  string
		cfg   gitlabx.LabelMachineConfig
		draft bool
		event string
		want  []string
	}{
		{"draft opened: no move by default", gitlabx.LabelMachineConfig{}, true, "open", nil},
		{"draft opened: configured", gitlabx.LabelMachineConfig{OnDraftOpen: gitlabx.StateInDevelopment}, true, "open", []string{"In Development"}},
		{"closed unmerged: no move by default", gitlabx.LabelMachineConfig{}, false, "close", nil},
		{"closed unmerged: configured", gitlabx.LabelMachineConfig{OnClose: gitlabx.StateToDo}, false, "close", []string{"To Do"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := board(t, "", 1)
			mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{SourceBranch: "1-wip", Draft: tt.draft})
			sendMR(t, srv, newMachine(t, srv, tt.cfg), mr.IID, gitlabtest.EventOptions{Action: tt.event})
			labels, _ := issueLabels(t, srv, 1)
			if len(tt.want) == 0 {
				assert.Empty(t, labels)
			} else {
				assert.Equal(t, tt.want, labels)
			}
		})
	}
}

func TestNewLabelMachineConfig(t *testing.T) {
	c := gitlabtest.NewServer(t).Client()
	tests := []struct {
		name string
		cfg  gitlabx.LabelMachineConfig
		want error
	}{
		{"unknown OnMerge", gitlabx.LabelMachineConfig{OnMerge: "Shipped"}, gitlabx.ErrUnknownState},
		{"duplicate state", gitlabx.LabelMachineConfig{States: []gitlabx.State{"A", "A"}, OnOpen: "A", OnMerge: "A"}, gitlabx.ErrConfig},
		{"Closed as a labelled state", gitlabx.LabelMachineConfig{States: []gitlabx.State{gitlabx.StateClosed}}, gitlabx.ErrConfig},
		{"OnOpen not among custom states", gitlabx.LabelMachineConfig{States: []gitlabx.State{"Doing", "Done"}}, gitlabx.ErrUnknownState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := gitlabx.NewLabelMachine(c, tt.cfg)
			assert.ErrorIs(t, err, tt.want)
		})
	}
	m, err := gitlabx.NewLabelMachine(c, gitlabx.LabelMachineConfig{Labels: map[gitlabx.State]string{gitlabx.StateToTest: "QA"}, Scope: "wf"})
	require.NoError(t, err)
	assert.Equal(t, "QA", m.Label(gitlabx.StateToTest))
	assert.Equal(t, "wf::In Review", m.Label(gitlabx.StateInReview))
	_, err = m.Move(t.Context(), proj, 1, "Nowhere")
	assert.ErrorIs(t, err, gitlabx.ErrUnknownState)
}

func TestIssueReferences(t *testing.T) {
	tests := []struct {
		title, description, branch string
		want                       []int64
	}{
		{"Fix #12", "", "", []int64{12}},
		{"Fix #12 and #7", "Closes #12.\nSee #9, (#10)", "", []int64{12, 7, 9, 10}},
		{"", "", "123-fix-login", []int64{123}},
		{"", "", "feature/45-thing", []int64{45}},
		{"", "", "fix-login-2", nil},
		{"group/app#5 and !6 and &7 and a#8 and ##9", "", "", nil},
		{"#0 #007x", "", "release-1.2", nil},
		{"#12", "#12", "12-again", []int64{12}},
	}
	for _, tt := range tests {
		got := gitlabx.IssueReferences(tt.title, tt.description, tt.branch)
		assert.Equal(t, tt.want, got, "IssueReferences(%q, %q, %q)", tt.title, tt.description, tt.branch)
	}
}

func TestLinkedIssuesCapped(t *testing.T) {
	srv := board(t, "", 0)
	var refs []string
	for i := 1; i <= 10; i++ {
		refs = append(refs, fmt.Sprintf("#%d", i))
	}
	mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{Description: strings.Join(refs, " "), SourceBranch: "x"})
	m := newMachine(t, srv, gitlabx.LabelMachineConfig{MaxIssues: 4})
	body, err := srv.MergeRequestEvent(proj, mr.IID, gitlabtest.EventOptions{})
	require.NoError(t, err)
	ev, err := gitlab.ParseWebhook(gitlab.EventTypeMergeRequest, body)
	require.NoError(t, err)
	got, err := m.LinkedIssues(t.Context(), ev.(*gitlab.MergeEvent))
	require.NoError(t, err)
	assert.Len(t, got, 4)
	assert.True(t, slices.IsSortedFunc(got, func(a, b gitlabx.IssueRef) int { return int(a.IID - b.IID) }))
}

// TestLabelMachineReopenOnMergeEitherOrder: GitLab merges, then closes the
// "Closes #1" issue in a background job, and the MR's merge event and the
// issue's close event arrive in either order. The receiver here handles
// each delivery before answering, so with the merge first the machine sees
// #1 still open. Either way #1 must end open at To Test.
func TestLabelMachineReopenOnMergeEitherOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order gitlabtest.MergeCloseOrder
	}{
		{"merge event first", gitlabtest.CloseAfterMerge},
		{"close event first", gitlabtest.CloseBeforeMerge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := gitlabtest.NewServer(t, gitlabtest.WithMergeCloseOrder(tc.order))
			srv.AddProject(gitlabtest.Project{ID: proj, Path: "ops/app"})
			for _, s := range gitlabx.DefaultStates() {
				srv.AddLabel(proj, string(s))
			}
			srv.AddIssue(proj, gitlabtest.Issue{Title: "broken", Labels: []string{"In Review"}})
			srv.SetFile(proj, "fix", "VERSION", []byte("2\n"))
			mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{Title: "Fix", Description: "Closes #1", SourceBranch: "fix"})
			m := newMachine(t, srv, gitlabx.LabelMachineConfig{ReopenOnMerge: true})
			errs := syncReceiver(t, srv, m)

			_, _, err := srv.ClientFor(gitlabtest.DeveloperToken).MergeRequests.AcceptMergeRequest(proj, mr.IID, nil)
			require.NoError(t, err)
			require.NoError(t, srv.WaitDeliveries(t.Context()))
			assert.NoError(t, errors.Join(*errs...))
			labels, state := issueLabels(t, srv, 1)
			assert.Equal(t, "opened", state)
			assert.Equal(t, []string{"To Test"}, labels)
		})
	}
}

// syncReceiver hooks m up to srv's merge request and issue webhooks through
// a receiver that handles each delivery before it answers, so the order
// of deliveries is the order of handling. It returns the handlers' errors.
func syncReceiver(t *testing.T, srv *gitlabtest.Server, m *gitlabx.LabelMachine) *[]error {
	t.Helper()
	var errs []error
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := gitlab.ParseWebhook(gitlab.HookEventType(r), body)
		if err != nil {
			errs = append(errs, err)
			return
		}
		switch ev := ev.(type) {
		case *gitlab.MergeEvent:
			errs = append(errs, m.HandleMergeRequest(t.Context(), ev))
		case *gitlab.IssueEvent:
			errs = append(errs, m.HandleIssue(t.Context(), ev))
		}
	}))
	t.Cleanup(hs.Close)
	srv.AddHook(proj, gitlabtest.Hook{URL: hs.URL, Events: []string{gitlabtest.MergeRequestHook, gitlabtest.IssueHook}})
	return &errs
}

// TestLabelMachineReadyByTitleEdit: a developer marks a draft MR ready by
// taking "Draft:" out of its title; GitLab reports changes.draft and the
// linked issue moves to In Review.
func TestLabelMachineReadyByTitleEdit(t *testing.T) {
	srv := board(t, "", 1)
	srv.SetFile(proj, "main", "VERSION", []byte("1\n"))
	srv.SetFile(proj, "fix", "VERSION", []byte("2\n"))
	m := newMachine(t, srv, gitlabx.LabelMachineConfig{})
	errs := syncReceiver(t, srv, m)
	dev := srv.ClientFor(gitlabtest.DeveloperToken)
	mr, _, err := dev.MergeRequests.CreateMergeRequest(proj, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr("Draft: Fix #1"), SourceBranch: gitlab.Ptr("fix"), TargetBranch: gitlab.Ptr("main"),
	})
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	labels, _ := issueLabels(t, srv, 1)
	assert.Empty(t, labels, "a draft moves nothing")
	_, _, err = dev.MergeRequests.UpdateMergeRequest(proj, mr.IID, &gitlab.UpdateMergeRequestOptions{Title: gitlab.Ptr("Fix #1")})
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(t.Context()))
	assert.NoError(t, errors.Join(*errs...))
	labels, _ = issueLabels(t, srv, 1)
	assert.Equal(t, []string{"In Review"}, labels, "marked ready by the title edit")
}
