package gitlabx

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// DefaultReportLabel is the label IssueReporter puts on the issues it files,
// and narrows its lookup with, when IssueReporter.Labels is empty.
const DefaultReportLabel = "Race condition"

// ErrReportTitle is returned by IssueReporter.Report for a Report without a
// title.
var ErrReportTitle = errors.New("gitlabx: report has no title")

// ErrReportFingerprint is returned by IssueReporter.Report for a fingerprint
// that cannot be carried by a hidden marker (it contains white space or '>').
var ErrReportFingerprint = errors.New("gitlabx: report fingerprint has white space or '>'")

// ClosedPolicy says what IssueReporter does when the issue filed for a
// fingerprint has been closed and the problem comes back.
type ClosedPolicy int

const (
	// ReopenClosed reopens the closed issue and comments on it (the default).
	ReopenClosed ClosedPolicy = iota
	// FileNewAfterClosed leaves the closed issue alone and files a new one
	// that links to it. Later runs comment on the new, open issue.
	FileNewAfterClosed
)

// Report is one finding to file: a race from racelog, a failing check, any
// problem with a stable identity.
type Report struct {
	// Title is the issue title (required); GitLab's limit of 255
	// characters is applied.
	Title string
	// Fingerprint identifies the problem across runs. It is stored in the
	// issue as a hidden marker, <!-- opskit:fingerprint=... -->, and must
	// not contain white space or '>'. Empty means a hash of Title.
	Fingerprint string
	// Text goes into a new issue's description in a code block (for a
	// race, the report as the race detector printed it).
	Text string
	// Occurrences is how many times the problem was seen in this run;
	// 0 counts as 1.
	Occurrences int
	// Hosts and LogFiles say where it was seen; they are listed in the
	// description of a new issue and in the comment on an existing one.
	Hosts    []string
	LogFiles []string
	// RunID identifies the run. A comment carries it in a hidden marker,
	// and a comment for the same fingerprint and RunID is never added twice:
	// a cron job that passes, say, the date and its log files as RunID can
	// be re-run safely. Empty means a random ID, which still prevents
	// duplicates from retries within one Report call.
	RunID string
}

// ReportAction says what IssueReporter.Report did.
type ReportAction string

// The actions of IssueReporter.Report.
const (
	ReportCreated   ReportAction = "created"   // a new issue was filed
	ReportCommented ReportAction = "commented" // a comment was added to the open issue
	ReportReopened  ReportAction = "reopened"  // the closed issue was reopened and commented
	ReportUnchanged ReportAction = "unchanged" // this run's comment was already there
)

// ReportResult is the outcome of IssueReporter.Report.
type ReportResult struct {
	Action ReportAction
	// IID and WebURL name the issue that was created or commented.
	IID    int64
	WebURL string
	// Fingerprint is the fingerprint used (derived from the title when the
	// Report had none).
	Fingerprint string
}

// IssueReporter files one GitLab issue per fingerprint: a new issue the first
// time, one comment per run afterwards. Create it with NewReporter and set
// the optional fields before the first call to Report; Report never changes
// them. It is safe for concurrent use; Report calls run one at a time.
//
// It never files a duplicate under retries. client-go retries POST requests
// on 5xx and 429, and a request whose answer was lost may have been applied,
// so IssueReporter turns off client-go's retries for its writes, and after
// a failed write it looks for the hidden marker again before writing once
// more.
type IssueReporter struct {
	// Labels are put on new issues and narrow the lookup. Empty means
	// []string{DefaultReportLabel}. An issue whose labels were since changed
	// is still found: when the narrowed lookup finds nothing, the lookup is
	// repeated without labels before an issue is created.
	Labels []string
	// OnClosed says what happens when the issue for a fingerprint is
	// closed. The zero value is ReopenClosed.
	OnClosed ClosedPolicy
	// Confidential files new issues as confidential.
	Confidential bool
	// WriteAttempts caps the attempts of each write (create issue, reopen,
	// add comment). 0 means 3.
	WriteAttempts int
	// RetryWait is the pause before a failed write is attempted again; it
	// doubles with each attempt, and a 429's Retry-After (up to a minute)
	// takes its place. 0 means 1s.
	RetryWait time.Duration
	// Logger receives one event per issue created, reopened or commented,
	// and one per failed write. Nil discards.
	Logger *slog.Logger

	client  *gitlab.Client
	project any
	mu      sync.Mutex
}

// NewReporter returns an IssueReporter that files issues in project, given
// as its numeric ID (int or int64) or its path ("group/name"), through
// client.
func NewReporter(client *gitlab.Client, project any) *IssueReporter {
	return &IssueReporter{client: client, project: project}
}

func (r *IssueReporter) labels() []string {
	if len(r.Labels) == 0 {
		return []string{DefaultReportLabel}
	}
	return r.Labels
}

func (r *IssueReporter) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *IssueReporter) attempts() int {
	if r.WriteAttempts <= 0 {
		return 3
	}
	return r.WriteAttempts
}

// Report files rep: it creates an issue when none carries rep's fingerprint
// marker, adds one comment with the occurrence count, hosts and log files to
// the open issue that does, and handles a closed one by IssueReporter's
// OnClosed policy.
//
// A Report without a title returns ErrReportTitle; a fingerprint with white
// space or '>' returns ErrReportFingerprint. Errors from GitLab are wrapped:
// errors.As with *gitlab.ErrorResponse and errors.Is with gitlab.ErrNotFound
// work on them. When ctx is cancelled, errors.Is(err, context.Canceled) holds.
func (r *IssueReporter) Report(ctx context.Context, rep Report) (ReportResult, error) {
	rep.Title = strings.TrimSpace(rep.Title)
	if rep.Title == "" {
		return ReportResult{}, ErrReportTitle
	}
	fp := rep.Fingerprint
	if fp == "" {
		sum := sha256.Sum256([]byte(rep.Title))
		fp = hex.EncodeToString(sum[:8])
	}
	if strings.ContainsAny(fp, " \t\r\n>") {
		return ReportResult{}, fmt.Errorf("%w: %q", ErrReportFingerprint, fp)
	}
	if rep.RunID == "" {
		rep.RunID = rand.Text()
	}
	rep.RunID = strings.Map(func(c rune) rune {
		if strings.ContainsRune(" \t\r\n>", c) {
			return '_'
		}
		return c
	}, rep.RunID)
	if rep.Occurrences <= 0 {
		rep.Occurrences = 1
	}
	rep.Fingerprint = fp

	r.mu.Lock()
	defer r.mu.Unlock()
	is, err := r.find(ctx, fp)
	if err != nil {
		return ReportResult{Fingerprint: fp}, err
	}
	if is != nil && is.State == "closed" {
		// A re-run of the run that was already recorded on the closed issue
		// neither reopens it nor files a new one.
		seen, err := r.seen(ctx, is, rep.RunID)
		if err != nil || seen {
			return ReportResult{Action: ReportUnchanged, IID: is.IID, WebURL: is.WebURL, Fingerprint: fp}, err
		}
	}
	switch {
	case is == nil:
		return r.create(ctx, rep, nil)
	case is.State == "closed" && r.OnClosed == FileNewAfterClosed:
		return r.create(ctx, rep, is)
	case is.State == "closed":
		if err := r.reopen(ctx, is); err != nil {
			return ReportResult{Fingerprint: fp, IID: is.IID, WebURL: is.WebURL}, err
		}
		res, err := r.comment(ctx, rep, is)
		if err == nil && res.Action == ReportCommented {
			res.Action = ReportReopened
		}
		return res, err
	default:
		return r.comment(ctx, rep, is)
	}
}

// find returns the issue carrying the fingerprint's marker: the oldest open
// one, else the most recent closed one, else nil.
func (r *IssueReporter) find(ctx context.Context, fp string) (*gitlab.Issue, error) {
	found, err := r.list(ctx, fp, r.labels())
	if err == nil && len(found) == 0 {
		found, err = r.list(ctx, fp, nil)
	}
	if err != nil {
		return nil, err
	}
	var closed *gitlab.Issue
	for _, is := range found {
		if is.State != "closed" {
			return is, nil // found is oldest first
		}
		if closed == nil || is.IID > closed.IID {
			closed = is
		}
	}
	return closed, nil
}

func (r *IssueReporter) list(ctx context.Context, fp string, labels []string) ([]*gitlab.Issue, error) {
	mark := marker("fingerprint", fp)
	opt := &gitlab.ListProjectIssuesOptions{
		ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1},
		Search:      gitlab.Ptr(fp),
		In:          gitlab.Ptr("description"),
		OrderBy:     gitlab.Ptr("created_at"),
		Sort:        gitlab.Ptr("asc"),
	}
	if len(labels) > 0 {
		l := gitlab.LabelOptions(labels)
		opt.Labels = &l
	}
	var out []*gitlab.Issue
	for {
		page, resp, err := r.client.Issues.ListProjectIssues(r.project, opt, gitlab.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("gitlabx: report %s: list issues: %w", fp, ctxErr(ctx, err))
		}
		for _, is := range page {
			if strings.Contains(is.Description, mark) {
				out = append(out, is)
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return out, nil
		}
		opt.Page = resp.NextPage
	}
}

// ctxErr prefers the context's error, so that errors.Is(err,
// context.Canceled) holds however client-go wrapped it.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// mayRetryWrite reports whether a failed write may be attempted again (after
// checking that it was not applied): server errors, rate limits and
// transport errors may; other 4xx answers and cancellation may not.
func mayRetryWrite(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		c := er.Response.StatusCode
		return c >= 500 || c == http.StatusTooManyRequests || c == http.StatusRequestTimeout
	}
	return !errors.Is(err, gitlab.ErrNotFound)
}

// pause waits before write attempt+1 after err, or until ctx is done.
func (r *IssueReporter) pause(ctx context.Context, attempt int, err error) error {
	d := r.RetryWait
	if d <= 0 {
		d = time.Second
	}
	d <<= attempt - 1
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusTooManyRequests {
		if secs, perr := strconv.Atoi(er.Response.Header.Get("Retry-After")); perr == nil && secs >= 0 {
			d = min(time.Duration(secs)*time.Second, time.Minute)
		}
	}
	r.logger().Info("waiting before the next write attempt", "attempt", attempt+1, "wait", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *IssueReporter) create(ctx context.Context, rep Report, prev *gitlab.Issue) (ReportResult, error) {
	fp := rep.Fingerprint
	labels := gitlab.LabelOptions(r.labels())
	opt := &gitlab.CreateIssueOptions{
		Title:       gitlab.Ptr(truncateRunes(rep.Title, 255)),
		Description: gitlab.Ptr(issueDescription(rep, prev)),
		Labels:      &labels,
	}
	if r.Confidential {
		opt.Confidential = gitlab.Ptr(true)
	}
	var lastErr error
	for attempt := 1; attempt <= r.attempts(); attempt++ {
		is, _, err := r.client.Issues.CreateIssue(r.project, opt, gitlab.WithContext(ctx), noRetry())
		if err == nil {
			r.logger().Info("issue created", "fingerprint", fp, "iid", is.IID, "url", is.WebURL)
			return ReportResult{Action: ReportCreated, IID: is.IID, WebURL: is.WebURL, Fingerprint: fp}, nil
		}
		lastErr = fmt.Errorf("gitlabx: report %s: create issue: %w", fp, ctxErr(ctx, err))
		if !mayRetryWrite(ctx, err) {
			return ReportResult{Fingerprint: fp}, lastErr
		}
		r.logger().Warn("create issue failed; checking whether it was applied", "fingerprint", fp, "attempt", attempt, "err", err)
		// The request may have been applied before its answer was lost.
		is, ferr := r.find(ctx, fp)
		if ferr != nil {
			return ReportResult{Fingerprint: fp}, errors.Join(lastErr, ferr)
		}
		if is != nil && is.State != "closed" && (prev == nil || is.IID != prev.IID) {
			r.logger().Info("issue created", "fingerprint", fp, "iid", is.IID, "url", is.WebURL)
			return ReportResult{Action: ReportCreated, IID: is.IID, WebURL: is.WebURL, Fingerprint: fp}, nil
		}
		if attempt < r.attempts() {
			if err := r.pause(ctx, attempt, err); err != nil {
				return ReportResult{Fingerprint: fp}, fmt.Errorf("gitlabx: report %s: create issue: %w", fp, err)
			}
		}
	}
	return ReportResult{Fingerprint: fp}, lastErr
}

func (r *IssueReporter) reopen(ctx context.Context, is *gitlab.Issue) error {
	// Reopening twice is harmless, so client-go's own retries may stay on.
	var err error
	for attempt := 1; attempt <= r.attempts(); attempt++ {
		_, _, err = r.client.Issues.UpdateIssue(r.project, is.IID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("reopen")}, gitlab.WithContext(ctx))
		if err == nil {
			r.logger().Info("issue reopened", "iid", is.IID, "url", is.WebURL)
			is.State = "opened"
			return nil
		}
		if !mayRetryWrite(ctx, err) || attempt == r.attempts() {
			break
		}
		if perr := r.pause(ctx, attempt, err); perr != nil {
			err = perr
			break
		}
	}
	return fmt.Errorf("gitlabx: report: reopen issue %d: %w", is.IID, ctxErr(ctx, err))
}

func (r *IssueReporter) comment(ctx context.Context, rep Report, is *gitlab.Issue) (ReportResult, error) {
	fp := rep.Fingerprint
	res := ReportResult{IID: is.IID, WebURL: is.WebURL, Fingerprint: fp}
	runMark := marker("run", rep.RunID)
	done, err := r.seen(ctx, is, rep.RunID)
	if err != nil {
		return res, err
	}
	if done {
		res.Action = ReportUnchanged
		return res, nil
	}
	body := marker("fingerprint", fp) + " " + runMark + "\n" + seenLine("Seen again", rep) + "\n"
	var lastErr error
	for attempt := 1; attempt <= r.attempts(); attempt++ {
		_, _, err := r.client.Notes.CreateIssueNote(r.project, is.IID, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr(body)}, gitlab.WithContext(ctx), noRetry())
		if err == nil {
			r.logger().Info("issue commented", "fingerprint", fp, "iid", is.IID, "occurrences", rep.Occurrences)
			res.Action = ReportCommented
			return res, nil
		}
		lastErr = fmt.Errorf("gitlabx: report %s: comment on issue %d: %w", fp, is.IID, ctxErr(ctx, err))
		if !mayRetryWrite(ctx, err) {
			return res, lastErr
		}
		r.logger().Warn("comment failed; checking whether it was applied", "fingerprint", fp, "iid", is.IID, "attempt", attempt, "err", err)
		done, ferr := r.hasNote(ctx, is.IID, runMark)
		if ferr != nil {
			return res, errors.Join(lastErr, ferr)
		}
		if done {
			res.Action = ReportCommented
			return res, nil
		}
		if attempt < r.attempts() {
			if err := r.pause(ctx, attempt, err); err != nil {
				return res, fmt.Errorf("gitlabx: report %s: comment on issue %d: %w", fp, is.IID, err)
			}
		}
	}
	return res, lastErr
}

// seen reports whether the run was recorded on the issue: it filed the
// issue, or commented on it.
func (r *IssueReporter) seen(ctx context.Context, is *gitlab.Issue, runID string) (bool, error) {
	mark := marker("run", runID)
	if strings.Contains(is.Description, mark) {
		return true, nil
	}
	return r.hasNote(ctx, is.IID, mark)
}

// hasNote reports whether the issue has a note containing mark.
func (r *IssueReporter) hasNote(ctx context.Context, iid int64, mark string) (bool, error) {
	opt := &gitlab.ListIssueNotesOptions{
		ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1},
		OrderBy:     gitlab.Ptr("created_at"),
		Sort:        gitlab.Ptr("desc"),
	}
	for {
		notes, resp, err := r.client.Notes.ListIssueNotes(r.project, iid, opt, gitlab.WithContext(ctx))
		if err != nil {
			return false, fmt.Errorf("gitlabx: report: list notes of issue %d: %w", iid, ctxErr(ctx, err))
		}
		if slices.ContainsFunc(notes, func(n *gitlab.Note) bool { return strings.Contains(n.Body, mark) }) {
			return true, nil
		}
		if resp == nil || resp.NextPage == 0 {
			return false, nil
		}
		opt.Page = resp.NextPage
	}
}

// seenLine says how often and where: "Seen again: 3 occurrences on web1, web2 in `app.log`."
func seenLine(lead string, rep Report) string {
	var b strings.Builder
	b.WriteString(lead)
	if rep.Occurrences == 1 {
		b.WriteString(": 1 occurrence")
	} else {
		fmt.Fprintf(&b, ": %d occurrences", rep.Occurrences)
	}
	if len(rep.Hosts) > 0 {
		b.WriteString(" on ")
		b.WriteString(strings.Join(codeSpans(rep.Hosts), ", "))
	}
	if len(rep.LogFiles) > 0 {
		b.WriteString(" in ")
		b.WriteString(strings.Join(codeSpans(rep.LogFiles), ", "))
	}
	b.WriteString(".")
	return b.String()
}

func codeSpans(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		s = strings.ReplaceAll(s, "`", "'")
		out[i] = "`" + s + "`"
	}
	return out
}

// maxDescription keeps a description well under GitLab's 1,048,576
// character limit.
const maxDescription = 900_000

func issueDescription(rep Report, prev *gitlab.Issue) string {
	var b strings.Builder
	b.WriteString(marker("fingerprint", rep.Fingerprint))
	b.WriteString(" ")
	b.WriteString(marker("run", rep.RunID))
	b.WriteString("\n")
	b.WriteString(seenLine("First seen", rep))
	b.WriteString("\n")
	if prev != nil {
		fmt.Fprintf(&b, "\nThis came back after #%d was closed.\n", prev.IID)
	}
	if text := strings.TrimRight(rep.Text, "\n"); text != "" {
		text = truncateRunes(text, maxDescription)
		fence := "```"
		for strings.Contains(text, fence) {
			fence += "`"
		}
		fmt.Fprintf(&b, "\n%stext\n%s\n%s\n", fence, text, fence)
	}
	fmt.Fprintf(&b, "\nFingerprint: `%s`\n", rep.Fingerprint)
	return b.String()
}

func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}
