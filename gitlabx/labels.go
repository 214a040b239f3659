package gitlabx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// State is a step of the issue workflow. The labelled states are configured
// in LabelMachineConfig.States; StateOpen (no workflow label) and StateClosed
// (the issue is closed, no workflow label) bracket them.
type State string

// The default workflow: Open → To Do → In Development → In Review → To Test
// → Testing → Closed.
const (
	StateOpen          State = "Open"
	StateToDo          State = "To Do"
	StateInDevelopment State = "In Development"
	StateInReview      State = "In Review"
	StateToTest        State = "To Test"
	StateTesting       State = "Testing"
	StateClosed        State = "Closed"
)

// DefaultStates are the five labelled states of the default workflow, in board order.
func DefaultStates() []State {
	return []State{StateToDo, StateInDevelopment, StateInReview, StateToTest, StateTesting}
}

var (
	// ErrUnknownState is returned when a transition names a state the machine does not define.
	ErrUnknownState = errors.New("gitlabx: unknown workflow state")
	// ErrLabelMissing is returned when a workflow label does not exist in the
	// project: GitLab would silently create it, misspelt or not.
	ErrLabelMissing = errors.New("gitlabx: label does not exist in the project")
)

// LabelMachineConfig configures a LabelMachine. The zero value of each field
// selects the documented default.
type LabelMachineConfig struct {
	// States are the labelled workflow states in board order; moving to an
	// earlier one is moving backwards. nil means DefaultStates().
	States []State
	// Labels maps a state to its label. A state not in the map is labelled
	// with its name, prefixed with Scope+"::" when Scope is set.
	Labels map[State]string
	// Scope makes the labels scoped, e.g. "workflow" gives "workflow::In Review".
	Scope string
	// OnOpen is where linked issues go when an MR is opened, reopened or
	// marked ready. "" means StateInReview.
	OnOpen State
	// OnDraftOpen is where they go when a draft MR is opened. "" means no move.
	OnDraftOpen State
	// OnMerge is where they go when an MR is merged. "" means StateToTest.
	OnMerge State
	// OnClose is where they go when an MR is closed without merging.
	// "" means no move.
	OnClose State
	// AllowBackwards lets a transition move an issue to an earlier state.
	// Without it such a transition is skipped, which also makes
	// out-of-order events (an "open" arriving after a "merge") harmless.
	AllowBackwards bool
	// ReopenOnMerge reopens, at OnMerge, the issues that GitLab closed
	// because the merged MR said "Closes #12". GitLab closes them in a
	// background job after the merge, so the MR's merge event and the
	// issue's close event arrive in either order: the machine reopens on
	// the merge event when the issue is already closed, and on the close
	// event when the issue's resource state events say a merge request
	// closed it. One extra API call is made per issue close event.
	ReopenOnMerge bool
	// MaxIssues bounds the issues one MR event moves. 0 means 100.
	MaxIssues int
	// Concurrency bounds the issues updated at once. 0 means 4.
	Concurrency int
	// OnTransition, when set, is called after each issue is considered,
	// moved or not.
	OnTransition func(Transition)
	// Logger receives a record per label change. nil discards.
	Logger *slog.Logger
}

// Transition is what the machine did, or decided not to do, to one issue.
type Transition struct {
	Project  int64
	IssueIID int64
	From, To State
	Applied  bool   // an update was sent
	Reopened bool   // the update also reopened the issue
	Skipped  string // why nothing was sent, when Applied is false
}

// IssueRef names an issue an MR is linked to.
type IssueRef struct {
	Project int64
	IID     int64
	Closing bool // GitLab closes it when the MR merges ("Closes #12")
}

// LabelMachine moves issues across the board as their merge requests open,
// merge and close, with one update per issue that adds the new workflow
// label and removes every other one.
type LabelMachine struct {
	client *gitlab.Client
	cfg    LabelMachineConfig
	log    *slog.Logger
	rank   map[State]int
	labels map[State]string
	locks  keyedMutex
}

// NewLabelMachine returns a machine that calls GitLab through client. If a
// configured state is not among the workflow states, the error wraps
// ErrUnknownState; other configuration errors wrap ErrConfig.
func NewLabelMachine(client *gitlab.Client, cfg LabelMachineConfig) (*LabelMachine, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil gitlab client", ErrConfig)
	}
	if cfg.States == nil {
		cfg.States = DefaultStates()
	}
	if cfg.OnOpen == "" {
		cfg.OnOpen = StateInReview
	}
	if cfg.OnMerge == "" {
		cfg.OnMerge = StateToTest
	}
	if cfg.MaxIssues <= 0 {
		cfg.MaxIssues = 100
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	m := &LabelMachine{client: client, cfg: cfg, log: cfg.Logger, rank: map[State]int{StateOpen: -1}, labels: map[State]string{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for i, s := range cfg.States {
		if s == "" || s == StateOpen || s == StateClosed {
			return nil, fmt.Errorf("%w: %q cannot be a labelled state", ErrConfig, s)
		}
		if _, dup := m.rank[s]; dup {
			return nil, fmt.Errorf("%w: state %q listed twice", ErrConfig, s)
		}
		m.rank[s] = i
		l := cfg.Labels[s]
		if l == "" {
			l = string(s)
			if cfg.Scope != "" {
				l = cfg.Scope + "::" + l
			}
		}
		if seen[l] {
			return nil, fmt.Errorf("%w: label %q used twice", ErrConfig, l)
		}
		seen[l] = true
		m.labels[s] = l
	}
	m.rank[StateClosed] = len(cfg.States)
	for _, s := range []State{cfg.OnOpen, cfg.OnDraftOpen, cfg.OnMerge, cfg.OnClose} {
		if _, ok := m.rank[s]; s != "" && !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownState, s)
		}
	}
	return m, nil
}

// Label returns the label of a labelled state, or "" for StateOpen,
// StateClosed and unknown states.
func (m *LabelMachine) Label(s State) string { return m.labels[s] }

// StateOf returns the workflow state that an issue with these labels and
// this state ("opened" or "closed") is in: the latest labelled state among
// its labels, StateOpen when it has none, StateClosed when it is closed.
func (m *LabelMachine) StateOf(labels []string, issueState string) State {
	if issueState == "closed" {
		return StateClosed
	}
	cur := StateOpen
	for _, l := range labels {
		for s, sl := range m.labels {
			if sl == l && m.rank[s] > m.rank[cur] {
				cur = s
			}
		}
	}
	return cur
}

// Register makes h run the machine on merge request and issue events.
func (m *LabelMachine) Register(h *Hooks) {
	h.OnMergeRequest(m.HandleMergeRequest)
	h.OnIssue(m.HandleIssue)
}

// HandleMergeRequest moves the MR's linked issues (see LinkedIssues): to
// OnOpen when it is opened, reopened or marked ready; OnDraftOpen when it is
// opened as a draft; OnMerge when merged; OnClose when closed unmerged.
// Other events are ignored. Every linked issue is tried; the error joins
// the failures.
func (m *LabelMachine) HandleMergeRequest(ctx context.Context, ev *gitlab.MergeEvent) error {
	a := ev.ObjectAttributes
	var to State
	switch {
	case (a.Action == "open" || a.Action == "reopen") && (a.Draft || a.WorkInProgress):
		to = m.cfg.OnDraftOpen
	case a.Action == "open" || a.Action == "reopen":
		to = m.cfg.OnOpen
	case a.Action == "update" && ev.Changes.Draft.Previous && !ev.Changes.Draft.Current:
		to = m.cfg.OnOpen
	case a.Action == "merge":
		to = m.cfg.OnMerge
	case a.Action == "close":
		to = m.cfg.OnClose
	}
	if to == "" {
		return nil
	}
	refs, err := m.LinkedIssues(ctx, ev)
	if err != nil {
		return err
	}
	reopen := m.cfg.ReopenOnMerge && a.Action == "merge"
	projLabels := &labelSets{m: m}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, m.cfg.Concurrency)
	)
	for _, r := range refs {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				errs = append(errs, ctx.Err())
				mu.Unlock()
				return
			}
			defer func() { <-sem }()
			if _, err := m.move(ctx, r.Project, r.IID, to, reopen && r.Closing, projLabels); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// HandleIssue removes the workflow labels of an issue that was closed.
// With ReopenOnMerge, an issue that a merged MR closed ("Closes #12") is
// instead reopened at OnMerge, since GitLab may deliver that close after
// the MR's merge event. Other issue events are ignored.
func (m *LabelMachine) HandleIssue(ctx context.Context, ev *gitlab.IssueEvent) error {
	if ev.ObjectAttributes.Action != "close" {
		return nil
	}
	project, iid := ev.Project.ID, ev.ObjectAttributes.IID
	if m.cfg.ReopenOnMerge {
		byMerge, err := m.closedByMerge(ctx, project, iid)
		if err != nil {
			return err
		}
		if byMerge {
			_, err := m.move(ctx, project, iid, m.cfg.OnMerge, true, &labelSets{m: m})
			return err
		}
	}
	_, err := m.Move(ctx, project, iid, StateClosed)
	return err
}

// stateEvent is the part of GitLab's resource state event the machine
// reads; client-go's StateEvent leaves out source_merge_request_id.
type stateEvent struct {
	ID                   int64  `json:"id"`
	State                string `json:"state"`
	SourceMergeRequestID *int64 `json:"source_merge_request_id"`
}

// closedByMerge reports whether the latest close of the issue was made by
// a merged merge request (GET /projects/:id/issues/:iid/resource_state_events).
func (m *LabelMachine) closedByMerge(ctx context.Context, project, iid int64) (bool, error) {
	var last *stateEvent
	for page := int64(1); ; {
		req, err := m.client.NewRequest(http.MethodGet, fmt.Sprintf("projects/%d/issues/%d/resource_state_events", project, iid),
			&gitlab.ListOptions{PerPage: 100, Page: page}, RequestOptions(ctx))
		if err != nil {
			return false, fmt.Errorf("gitlabx: state events of issue %d#%d: %w", project, iid, err)
		}
		var evs []stateEvent
		resp, err := m.client.Do(req, &evs)
		if err != nil {
			return false, fmt.Errorf("gitlabx: state events of issue %d#%d: %w", project, iid, err)
		}
		for i := range evs {
			if evs[i].State == "closed" && (last == nil || evs[i].ID > last.ID) {
				last = &evs[i]
			}
		}
		if resp == nil || resp.NextPage == 0 || resp.NextPage <= page {
			break
		}
		page = resp.NextPage
	}
	return last != nil && last.SourceMergeRequestID != nil && *last.SourceMergeRequestID != 0, nil
}

// Move puts an issue in state to with one update that adds to's label and
// removes every other workflow label. It sends nothing when the issue is
// already there, when the move would go backwards (unless AllowBackwards),
// when to is StateClosed and the issue is open, when the issue is closed
// and to is not StateClosed, or when there is no such issue;
// Transition.Skipped says why. If to's label
// does not exist in the project, the error wraps ErrLabelMissing; if to is
// not a workflow state, ErrUnknownState.
func (m *LabelMachine) Move(ctx context.Context, project, issueIID int64, to State) (Transition, error) {
	return m.move(ctx, project, issueIID, to, false, &labelSets{m: m})
}

func (m *LabelMachine) move(ctx context.Context, project, iid int64, to State, reopenClosed bool, sets *labelSets) (Transition, error) {
	t := Transition{Project: project, IssueIID: iid, To: to}
	if _, ok := m.rank[to]; !ok || to == StateOpen {
		return t, fmt.Errorf("%w: %q", ErrUnknownState, to)
	}
	defer m.locks.lock(fmt.Sprintf("%d/%d", project, iid))()
	is, _, err := m.client.Issues.GetIssue(project, iid, RequestOptions(ctx)...)
	if errors.Is(err, gitlab.ErrNotFound) {
		// A "#123" that names no issue (or an MR, or one we cannot see).
		t.Skipped = "no such issue"
		m.report(t)
		return t, nil
	}
	if err != nil {
		return t, fmt.Errorf("gitlabx: reading issue %d#%d: %w", project, iid, err)
	}
	t.From = m.StateOf(is.Labels, is.State)
	var present []string
	for _, l := range is.Labels {
		if m.isWorkflow(l) {
			present = append(present, l)
		}
	}
	reopen := false
	switch {
	case to == StateClosed && is.State != "closed":
		t.Skipped = "issue is open"
	case to == StateClosed && len(present) == 0:
		t.Skipped = "already closed without workflow labels"
	case to == StateClosed:
	case is.State == "closed" && reopenClosed:
		reopen = true
	case is.State == "closed":
		t.Skipped = "issue is closed"
	case t.From == to && len(present) == 1:
		t.Skipped = "already there"
	case m.rank[to] < m.rank[t.From] && !m.cfg.AllowBackwards:
		t.Skipped = "would move backwards"
	}
	if t.Skipped != "" {
		m.report(t)
		return t, nil
	}
	opt := &gitlab.UpdateIssueOptions{}
	add := m.labels[to]
	if add != "" {
		ok, err := sets.has(ctx, project, add)
		if err != nil {
			return t, err
		}
		if !ok {
			return t, fmt.Errorf("%w: %q in project %d (issue #%d)", ErrLabelMissing, add, project, iid)
		}
		opt.AddLabels = &gitlab.LabelOptions{add}
	}
	var remove gitlab.LabelOptions
	for _, s := range m.cfg.States {
		if l := m.labels[s]; l != add {
			remove = append(remove, l)
		}
	}
	opt.RemoveLabels = &remove
	if reopen {
		opt.StateEvent = gitlab.Ptr("reopen")
	}
	if _, _, err := m.client.Issues.UpdateIssue(project, iid, opt, RequestOptions(ctx)...); err != nil {
		return t, fmt.Errorf("gitlabx: moving issue %d#%d to %s: %w", project, iid, to, err)
	}
	t.Applied, t.Reopened = true, reopen
	m.log.Info("issue moved", "project", project, "issue", iid, "from", string(t.From), "to", string(to), "reopened", reopen)
	m.report(t)
	return t, nil
}

func (m *LabelMachine) report(t Transition) {
	if m.cfg.OnTransition != nil {
		m.cfg.OnTransition(t)
	}
}

func (m *LabelMachine) isWorkflow(label string) bool {
	for _, l := range m.labels {
		if l == label {
			return true
		}
	}
	return false
}

// labelSets caches each project's label names for one event.
type labelSets struct {
	m    *LabelMachine
	mu   sync.Mutex
	sets map[int64]map[string]bool
}

func (ls *labelSets) has(ctx context.Context, project int64, label string) (bool, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if set, ok := ls.sets[project]; ok {
		return set[label], nil
	}
	set := map[string]bool{}
	opt := &gitlab.ListLabelsOptions{ListOptions: gitlab.ListOptions{PerPage: 100}}
	for {
		labels, resp, err := ls.m.client.Labels.ListLabels(project, opt, RequestOptions(ctx)...)
		if err != nil {
			return false, fmt.Errorf("gitlabx: listing labels of project %d: %w", project, err)
		}
		for _, l := range labels {
			set[l.Name] = true
		}
		if resp == nil || resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	if ls.sets == nil {
		ls.sets = map[int64]map[string]bool{}
	}
	ls.sets[project] = set
	return set[label], nil
}

// issueRefRe matches "#123" when it is not part of a cross-project
// reference ("group/project#123") or a word.
var issueRefRe = regexp.MustCompile(`(?:^|[^\w/#&!-])#(\d+)\b`)

// branchRefRe matches the issue number that starts a branch name (or its
// last path segment): "123-fix-login", "feature/123-fix-login".
var branchRefRe = regexp.MustCompile(`(?:^|/)(\d+)-`)

// LinkedIssues returns the issues an MR is linked to: its closing issues and
// related issues from the API, and "#123" references in its title,
// description and source branch name ("123-fix-login"), at most
// MaxIssues, ordered by project and IID.
func (m *LabelMachine) LinkedIssues(ctx context.Context, ev *gitlab.MergeEvent) ([]IssueRef, error) {
	a := ev.ObjectAttributes
	pid := a.TargetProjectID
	found := map[[2]int64]*IssueRef{}
	add := func(project, iid int64, closing bool) {
		k := [2]int64{project, iid}
		if r, ok := found[k]; ok {
			r.Closing = r.Closing || closing
			return
		}
		found[k] = &IssueRef{Project: project, IID: iid, Closing: closing}
	}
	closing, err := listAll(func(page int64) ([]*gitlab.Issue, *gitlab.Response, error) {
		return m.client.MergeRequests.GetIssuesClosedOnMerge(pid, a.IID,
			&gitlab.GetIssuesClosedOnMergeOptions{ListOptions: gitlab.ListOptions{PerPage: 100, Page: page}}, RequestOptions(ctx)...)
	})
	if err != nil {
		return nil, fmt.Errorf("gitlabx: closing issues of !%d: %w", a.IID, err)
	}
	for _, is := range closing {
		add(cmp.Or(is.ProjectID, pid), is.IID, true)
	}
	related, err := listAll(func(page int64) ([]*gitlab.Issue, *gitlab.Response, error) {
		return m.client.MergeRequests.ListRelatedIssues(pid, a.IID,
			&gitlab.ListRelatedIssuesOptions{ListOptions: gitlab.ListOptions{PerPage: 100, Page: page}}, RequestOptions(ctx)...)
	})
	if err != nil {
		return nil, fmt.Errorf("gitlabx: related issues of !%d: %w", a.IID, err)
	}
	for _, is := range related {
		add(cmp.Or(is.ProjectID, pid), is.IID, false)
	}
	for _, iid := range IssueReferences(a.Title, a.Description, a.SourceBranch) {
		add(pid, iid, false)
	}
	refs := make([]IssueRef, 0, len(found))
	for _, r := range found {
		refs = append(refs, *r)
	}
	slices.SortFunc(refs, func(x, y IssueRef) int { return cmp.Or(cmp.Compare(x.Project, y.Project), cmp.Compare(x.IID, y.IID)) })
	if len(refs) > m.cfg.MaxIssues {
		m.log.Warn("too many linked issues", "mr", a.IID, "linked", len(refs), "max", m.cfg.MaxIssues)
		refs = refs[:m.cfg.MaxIssues]
	}
	return refs, nil
}

// IssueReferences returns the issue IIDs referenced as "#123" in title and
// description and by a branch name starting with "123-", in first-seen
// order without repeats. Cross-project references ("group/app#12") are not
// included.
func IssueReferences(title, description, branch string) []int64 {
	var iids []int64
	seen := map[int64]bool{}
	add := func(s string) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || seen[n] {
			return
		}
		seen[n] = true
		iids = append(iids, n)
	}
	for _, text := range []string{title, description} {
		for _, m := range issueRefRe.FindAllStringSubmatch(text, -1) {
			add(m[1])
		}
	}
	if m := branchRefRe.FindStringSubmatch(branch); m != nil {
		add(m[1])
	}
	return iids
}

func listAll(page func(int64) ([]*gitlab.Issue, *gitlab.Response, error)) ([]*gitlab.Issue, error) {
	var all []*gitlab.Issue
	for p := int64(1); ; {
		items, resp, err := page(p)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if resp == nil || resp.NextPage == 0 || resp.NextPage <= p {
			return all, nil
		}
		p = resp.NextPage
	}
}
