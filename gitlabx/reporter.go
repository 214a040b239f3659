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

	"github.com/opskit/opskit/racelog"
)

// DefaultReportLabel is the label IssueReporter puts on the issues it files,
// and finds them by, when IssueReporter.Labels is empty.
const DefaultReportLabel = "Race condition"

// ErrReportTitle is returned by IssueReporter.Report and ReportRun for a
// Report without a title.
var ErrReportTitle = errors.New("gitlabx: report has no title")

// ErrReportFingerprint is returned by IssueReporter.Report and ReportRun for
// a fingerprint that contains white space or '>'.
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
	// Title is the issue title (required); it is cut to GitLab's limit of
	// 255 characters.
	Title string
	// Fingerprint identifies the problem across runs. It is stored in the
	// issue as a hidden marker, <!-- opskit:fingerprint=... -->, and must
	// not contain white space or '>'. A fingerprint of up to 32 letters and
	// digits is stored as it is, so that a person can find the issue with
	// GitLab's search; a longer one, or one with other characters, is
	// stored, and found by search, as a 24-digit hash of it (see
	// MarkerValue). Empty means a hash of Title.
	Fingerprint string
	// Aliases are older fingerprints of the same problem: an issue filed
	// under one of them (and not under Fingerprint) is reused, and gets
	// Fingerprint's marker added to its description. An alias is looked
	// up both as written and as its MarkerValue, so an issue filed under a
	// long fingerprint that is now an alias is found either way. For a
	// race from racelog, pass the variants' IDs (racelog.Race.VariantIDs):
	// they are the fingerprints racelog gave races before a fingerprint
	// named the pair of racing locations.
	Aliases []string
	// Text goes into a new issue's description in a code block (for a
	// race, the report as the race detector printed it).
	Text string
	// Occurrences is how many times the problem was seen in this run;
	// 0 counts as 1.
	Occurrences int
	// Variants are the shapes in which the problem was seen in this run,
	// with counts (for a race: "Read/Write" 3, "Write/Write" 1); they are
	// listed in the description of a new issue and in comments.
	Variants []ReportVariant
	// Hosts and LogFiles say where it was seen; they are listed in the
	// description of a new issue and in the comment on an existing one.
	Hosts    []string
	LogFiles []string
	// RunID identifies the run. A comment carries it in a hidden marker,
	// and a comment for the same fingerprint and RunID is never added twice:
	// a cron job that passes, say, the date and its log files as RunID can
	// be re-run safely. Empty means a random ID, which still prevents
	// duplicates from retries within one Report call. ReportRun sets it.
	RunID string
}

// RaceReport turns a race collected by racelog into a Report: its title,
// fingerprint, representative text, occurrences, hosts and files, its
// variants by shape with counts, and the variants' IDs as Aliases (so an
// issue filed under racelog's older fingerprints is reused).
func RaceReport(rc racelog.Race) Report {
	rep := Report{
		Title:       rc.Title,
		Fingerprint: rc.Fingerprint,
		Aliases:     rc.VariantIDs(),
		Text:        rc.Report.Text,
		Occurrences: rc.Occurrences,
		Hosts:       rc.Hosts,
		LogFiles:    rc.Files,
	}
	for _, v := range rc.Variants {
		rep.Variants = append(rep.Variants, ReportVariant{Name: v.Shape, ID: v.Variant, Count: v.Count})
	}
	return rep
}

// ReportVariant is one shape of a Report and how often it was seen.
type ReportVariant struct {
	// Name is what the issue shows, for example "Read/Write".
	Name string
	// ID tells variants with the same Name apart (racelog's Variant); it
	// is shown next to the name when set.
	ID    string
	Count int
}

// ReportAction says what IssueReporter.Report did.
type ReportAction string

// The actions of IssueReporter.Report.
const (
	ReportCreated   ReportAction = "created"   // a new issue was filed
	ReportCommented ReportAction = "commented" // a comment was added to the open issue
	ReportReopened  ReportAction = "reopened"  // the closed issue was reopened and commented
	ReportUnchanged ReportAction = "unchanged" // this run's comment was already there
	ReportClosed    ReportAction = "closed"    // not seen for CloseAfterRuns runs: closed (ReportRun only)
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

// RunResult is the outcome of IssueReporter.ReportRun.
type RunResult struct {
	// Reports holds one result per report, in the order given.
	Reports []ReportResult
	// Closed names the issues closed because their problem was not seen
	// for CloseAfterRuns runs (only when CloseAfterRuns is set).
	Closed []ReportResult
	// APICalls counts the GitLab API requests the run made, retries
	// included.
	APICalls int
}

// DefaultFixedLabel is the label IssueReporter puts on an issue it closes
// because the problem was not seen for CloseAfterRuns runs, when
// IssueReporter.FixedLabel is empty.
const DefaultFixedLabel = "fixed?"

// IssueReporter files one GitLab issue per fingerprint: a new issue the first
// time, one comment per run afterwards. Create it with NewReporter and set
// the optional fields before the first call; the calls never change them. It
// is safe for concurrent use; calls run one at a time.
//
// # Finding its issues
//
// It never searches (GitLab's issue search is rate-limited to about 30
// requests a minute and drops words of 50 characters or more). Each
// ReportRun lists the project's issues that carry the reporter's label
// (Labels[0]) and were authored by the reporter's own user, in every state,
// once, page by page, and indexes them by the hidden markers in their
// descriptions. The user is learned once from GET /user. An issue authored
// by anyone else is never adopted, commented or edited, whatever markers it
// carries: anyone can paste a marker. Likewise, when it looks through an
// issue's notes for its own comment, only its user's notes count, and
// never a system note (GitLab attributes those to whoever caused them).
// Removing the reporter's label from an issue disowns it; the next run
// files a new one.
//
// A run makes one request per page of labelled issues (at least one), plus
// GET /user on the reporter's first run, plus per report: 1 to create an
// issue; or 1 to comment, plus 1 to read the issue's notes (to see whether
// this run already commented) when it has any; plus 1 to reopen; nothing
// for a report this run already filed. With CloseAfterRuns
// set: 1 more request for the ledger (2 on the first run) and 2 per issue
// closed. 60 new races take 62 requests, a re-run of that run 2.
//
// # Rate limits and retries
//
// RequestsPerSecond paces the requests. A 429 answer is waited out as its
// Retry-After (or else RateLimit-Reset) header says, up to MaxRetryWait, and
// the request is tried again. Writes never duplicate an issue or a note:
// client-go's own retries are turned off for every request, and after a
// failed write the reporter looks for what it wrote (the newest labelled
// issues, or the issue's notes) before writing once more.
//
// # Closing the loop
//
// With CloseAfterRuns set to N > 0, an open issue whose problem was not
// reported in N consecutive runs (distinct RunIDs given to ReportRun) is
// commented, labelled FixedLabel and closed; when the problem comes back it
// is reopened as usual and loses FixedLabel. The runs are counted in a
// ledger: one closed issue with the reporter's label, titled "opskit issue
// reporter: run ledger", whose description the reporter rewrites at the end
// of each run. QuarantineLabel, when set, is put on every issue while it is
// open (created or reopened) and taken off when the reporter closes it, for
// tools that skip known problems. Both are off by default.
type IssueReporter struct {
	// Labels are put on new issues. Labels[0] is the reporter's own label:
	// its issues are found by it. Empty means []string{DefaultReportLabel}.
	Labels []string
	// OnClosed says what happens when the issue for a fingerprint is
	// closed. The zero value is ReopenClosed.
	OnClosed ClosedPolicy
	// Confidential files new issues as confidential.
	Confidential bool
	// CloseAfterRuns, when > 0, closes an open issue whose problem was not
	// reported in that many consecutive runs of ReportRun. 0 never closes.
	CloseAfterRuns int
	// FixedLabel is put on issues closed by CloseAfterRuns. Empty means
	// DefaultFixedLabel.
	FixedLabel string
	// QuarantineLabel, when set, is put on every issue the reporter
	// creates or reopens and removed when it closes one.
	QuarantineLabel string
	// RequestsPerSecond caps the rate of API requests. 0 means no cap.
	RequestsPerSecond float64
	// WriteAttempts caps the attempts of each request (a read retried after
	// a 429 or 5xx, or a write). 0 means 3.
	WriteAttempts int
	// RetryWait is the pause before a failed request is attempted again; it
	// doubles with each attempt. A 429's Retry-After or RateLimit-Reset
	// takes its place. 0 means 1s.
	RetryWait time.Duration
	// MaxRetryWait caps the wait after a 429. 0 means 2 minutes.
	MaxRetryWait time.Duration
	// Logger receives one event per issue created, reopened, closed or
	// commented, and one per failed request. Nil discards.
	Logger *slog.Logger

	client  *gitlab.Client
	project any
	mu      sync.Mutex
	me      int64 // the reporter's user, from GET /user; 0 until learned
	calls   int
	last    time.Time // start of the last request, for RequestsPerSecond
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

func (r *IssueReporter) fixedLabel() string {
	if r.FixedLabel == "" {
		return DefaultFixedLabel
	}
	return r.FixedLabel
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

// MarkerValue returns what the hidden marker of an issue carries for a
// fingerprint: the fingerprint itself when it has 1 to 32 ASCII letters and
// digits (a word GitLab's full-text search indexes), else "h" followed by
// the first 24 hex digits of its SHA-256. GitLab does not index the marker
// itself (an HTML comment); a new issue's description also shows the
// fingerprint and, when they differ, this value in plain text, so a person
// finds the issue by searching for MarkerValue(fingerprint).
func MarkerValue(fingerprint string) string {
	if len(fingerprint) > 0 && len(fingerprint) <= 32 && isWord(fingerprint) {
		return fingerprint
	}
	sum := sha256.Sum256([]byte(fingerprint))
	return "h" + hex.EncodeToString(sum[:12])
}

func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Report files one report: it lists the reporter's issues (see
// IssueReporter), then creates an issue when none carries rep's
// fingerprint marker, adds one comment with the occurrence count, hosts and
// log files to the open issue that does, and handles a closed one by
// IssueReporter's OnClosed policy. To file the reports of a run, use
// ReportRun, which lists once for all of them and can close issues.
//
// A Report without a title returns ErrReportTitle; a fingerprint with white
// space or '>' returns ErrReportFingerprint. Errors from GitLab are wrapped:
// errors.As with *gitlab.ErrorResponse and errors.Is with gitlab.ErrNotFound
// work on them. When ctx is cancelled, errors.Is(err, context.Canceled) holds.
func (r *IssueReporter) Report(ctx context.Context, rep Report) (ReportResult, error) {
	if err := normalize(&rep); err != nil {
		return ReportResult{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	idx, err := r.load(ctx)
	if err != nil {
		return ReportResult{Fingerprint: rep.Fingerprint}, err
	}
	return r.file(ctx, idx, rep)
}

// ReportRun files every report of one run, with runID as each Report's
// RunID (empty means a random one): it lists the reporter's issues once,
// then files each report as Report does, and with CloseAfterRuns set,
// counts the run and closes the issues not seen for that many runs. A
// re-run with the same runID adds nothing and counts no further run.
//
// A report that fails does not stop the others (unless ctx is cancelled):
// the error is errors.Join of every failure, and RunResult.Reports holds a
// result for every report, failed ones with an empty Action. A run in which
// a report failed is not counted and closes nothing. Bad input
// gives ErrReportTitle or ErrReportFingerprint for that report.
func (r *IssueReporter) ReportRun(ctx context.Context, runID string, reps []Report) (RunResult, error) {
	if runID == "" {
		runID = rand.Text()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	res := RunResult{Reports: make([]ReportResult, len(reps))}
	defer func() { res.APICalls = r.calls - calls }()
	idx, err := r.load(ctx)
	if err != nil {
		res.APICalls = r.calls - calls
		return res, err
	}
	var errs []error
	seen := map[string]bool{}
	for i, rep := range reps {
		rep.RunID = runID
		if err := normalize(&rep); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Reports[i], err = r.file(ctx, idx, rep)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				res.APICalls = r.calls - calls
				return res, errors.Join(errs...)
			}
			continue
		}
		seen[MarkerValue(rep.Fingerprint)] = true
	}
	if r.CloseAfterRuns > 0 && len(errs) == 0 {
		closed, err := r.closeStale(ctx, idx, runID, seen)
		res.Closed = closed
		if err != nil {
			errs = append(errs, err)
		}
	}
	res.APICalls = r.calls - calls
	return res, errors.Join(errs...)
}

// normalize checks rep and fills in the defaults.
func normalize(rep *Report) error {
	rep.Title = strings.TrimSpace(rep.Title)
	if rep.Title == "" {
		return ErrReportTitle
	}
	if rep.Fingerprint == "" {
		sum := sha256.Sum256([]byte(rep.Title))
		rep.Fingerprint = hex.EncodeToString(sum[:8])
	}
	if strings.ContainsAny(rep.Fingerprint, " \t\r\n>") {
		return fmt.Errorf("%w: %q", ErrReportFingerprint, rep.Fingerprint)
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
	return nil
}

// index is the reporter's issues by marker value, each list oldest first.
type index struct {
	byMarker map[string][]*gitlab.Issue
	issues   []*gitlab.Issue // every indexed issue, oldest first
	ledger   *gitlab.Issue
}

func (x *index) add(is *gitlab.Issue) {
	if hasMarker(is.Description, "ledger", ledgerName) {
		x.ledger = is
		return
	}
	vals := fingerprintMarkers(is.Description)
	if len(vals) == 0 {
		return
	}
	x.issues = append(x.issues, is)
	for _, v := range vals {
		if !slices.Contains(x.byMarker[v], is) {
			x.byMarker[v] = append(x.byMarker[v], is)
		}
	}
}

// find returns the issue carrying one of the marker values, trying them in
// order: the oldest open one, else the most recent closed one, else nil.
func (x *index) find(vals ...string) (*gitlab.Issue, string) {
	for _, v := range vals {
		var closed *gitlab.Issue
		for _, is := range x.byMarker[v] {
			if is.State != "closed" {
				return is, v
			}
			if closed == nil || is.IID > closed.IID {
				closed = is
			}
		}
		if closed != nil {
			return closed, v
		}
	}
	return nil, ""
}

// fingerprintMarkers returns the values of every fingerprint marker in text.
func fingerprintMarkers(text string) []string {
	var out []string
	for _, m := range markerRe.FindAllStringSubmatch(text, -1) {
		if m[1] == "fingerprint" && !slices.Contains(out, m[2]) {
			out = append(out, m[2])
		}
	}
	return out
}

// whoami learns the reporter's own user once.
func (r *IssueReporter) whoami(ctx context.Context) (int64, error) {
	if r.me != 0 {
		return r.me, nil
	}
	var u *gitlab.User
	err := r.read(ctx, "get current user", func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
		var resp *gitlab.Response
		var err error
		u, resp, err = r.client.Users.CurrentUser(opts...)
		return resp, err
	})
	if err != nil {
		return 0, err
	}
	r.me = u.ID
	return r.me, nil
}

// load lists the reporter's issues and indexes them.
func (r *IssueReporter) load(ctx context.Context) (*index, error) {
	me, err := r.whoami(ctx)
	if err != nil {
		return nil, err
	}
	x := &index{byMarker: map[string][]*gitlab.Issue{}}
	opt := &gitlab.ListProjectIssuesOptions{
		ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1},
		State:       gitlab.Ptr("all"),
		Labels:      &gitlab.LabelOptions{r.labels()[0]},
		AuthorID:    gitlab.Ptr(me),
		OrderBy:     gitlab.Ptr("created_at"),
		Sort:        gitlab.Ptr("asc"),
	}
	for {
		var page []*gitlab.Issue
		var resp *gitlab.Response
		err := r.read(ctx, "list issues", func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
			var err error
			page, resp, err = r.client.Issues.ListProjectIssues(r.project, opt, opts...)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, is := range page {
			if is.Author != nil && is.Author.ID == me {
				x.add(is)
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return x, nil
		}
		opt.Page = resp.NextPage
	}
}

// file files one normalized report against the index.
func (r *IssueReporter) file(ctx context.Context, idx *index, rep Report) (ReportResult, error) {
	fp := rep.Fingerprint
	key := MarkerValue(fp)
	vals := []string{key}
	if fp != key {
		vals = append(vals, fp) // filed before markers were kept short
	}
	for _, a := range rep.Aliases {
		// An alias is looked up as the marker value a reporter of today
		// would have written for it, and as it is (written before markers
		// were kept short, or by racelog's variant IDs, which are both).
		for _, v := range []string{MarkerValue(a), a} {
			if a != "" && !slices.Contains(vals, v) {
				vals = append(vals, v)
			}
		}
	}
	is, via := idx.find(vals...)
	if is != nil && via != key {
		// Filed under an older fingerprint: add today's marker, so that the
		// issue is found by it from now on.
		if err := r.addMarker(ctx, idx, is, key); err != nil {
			return ReportResult{Fingerprint: fp, IID: is.IID, WebURL: is.WebURL}, err
		}
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
		return r.create(ctx, idx, rep, nil)
	case is.State == "closed" && r.OnClosed == FileNewAfterClosed:
		return r.create(ctx, idx, rep, is)
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

// addMarker adds the fingerprint marker value key to an issue's description.
// Setting the same description twice is harmless, so it is retried as a read.
func (r *IssueReporter) addMarker(ctx context.Context, idx *index, is *gitlab.Issue, key string) error {
	desc := marker("fingerprint", key) + " " + is.Description
	err := r.read(ctx, fmt.Sprintf("add marker to issue %d", is.IID), func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
		_, resp, err := r.client.Issues.UpdateIssue(r.project, is.IID, &gitlab.UpdateIssueOptions{Description: gitlab.Ptr(desc)}, opts...)
		return resp, err
	})
	if err != nil {
		return err
	}
	is.Description = desc
	idx.add(is)
	r.logger().Info("issue migrated to a new fingerprint", "iid", is.IID, "fingerprint", key)
	return nil
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

// send makes one request: it waits for its turn under RequestsPerSecond,
// counts it and turns client-go's retries off.
func (r *IssueReporter) send(ctx context.Context, f func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error)) error {
	if r.RequestsPerSecond > 0 {
		gap := time.Duration(float64(time.Second) / r.RequestsPerSecond)
		if wait := time.Until(r.last.Add(gap)); wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
		r.last = time.Now()
	}
	r.calls++
	_, err := f([]gitlab.RequestOptionFunc{gitlab.WithContext(ctx), noRetry()})
	return ctxErr(ctx, err)
}

// read makes a request that may be repeated safely (a read, or a write that
// sets a value), retrying it after 429, 5xx and transport errors.
func (r *IssueReporter) read(ctx context.Context, what string, f func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error)) error {
	for attempt := 1; ; attempt++ {
		err := r.send(ctx, f)
		if err == nil {
			return nil
		}
		if !mayRetryWrite(ctx, err) || attempt >= r.attempts() {
			return fmt.Errorf("gitlabx: report: %s: %w", what, err)
		}
		r.logger().Warn("request failed", "request", what, "attempt", attempt, "err", err)
		if perr := r.pause(ctx, attempt, err); perr != nil {
			return fmt.Errorf("gitlabx: report: %s: %w", what, perr)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryAfter returns how long a 429 answer asks to wait: its Retry-After
// (seconds or an HTTP date), else its RateLimit-Reset (a Unix time).
func retryAfter(resp *http.Response, now time.Time) (time.Duration, bool) {
	if v := resp.Header.Get("Retry-After"); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	if v := resp.Header.Get("RateLimit-Reset"); v != "" {
		if unix, err := strconv.ParseInt(v, 10, 64); err == nil && unix > 0 {
			return max(time.Unix(unix, 0).Sub(now), 0), true
		}
	}
	return 0, false
}

// pause waits before attempt+1 after err, or until ctx is done.
func (r *IssueReporter) pause(ctx context.Context, attempt int, err error) error {
	d := r.RetryWait
	if d <= 0 {
		d = time.Second
	}
	d <<= attempt - 1
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusTooManyRequests {
		if w, ok := retryAfter(er.Response, time.Now()); ok {
			limit := r.MaxRetryWait
			if limit <= 0 {
				limit = 2 * time.Minute
			}
			d = min(w, limit)
		}
	}
	r.logger().Info("waiting before the next attempt", "attempt", attempt+1, "wait", d)
	return sleep(ctx, d)
}

func (r *IssueReporter) create(ctx context.Context, idx *index, rep Report, prev *gitlab.Issue) (ReportResult, error) {
	fp := rep.Fingerprint
	key := MarkerValue(fp)
	labels := gitlab.LabelOptions(slices.Clone(r.labels()))
	if r.QuarantineLabel != "" {
		labels = append(labels, r.QuarantineLabel)
	}
	opt := &gitlab.CreateIssueOptions{
		Title:       gitlab.Ptr(truncateRunes(rep.Title, 255)),
		Description: gitlab.Ptr(issueDescription(rep, prev)),
		Labels:      &labels,
	}
	if r.Confidential {
		opt.Confidential = gitlab.Ptr(true)
	}
	done := func(is *gitlab.Issue) (ReportResult, error) {
		idx.add(is)
		r.logger().Info("issue created", "fingerprint", fp, "iid", is.IID, "url", is.WebURL)
		return ReportResult{Action: ReportCreated, IID: is.IID, WebURL: is.WebURL, Fingerprint: fp}, nil
	}
	var lastErr error
	for attempt := 1; attempt <= r.attempts(); attempt++ {
		var is *gitlab.Issue
		err := r.send(ctx, func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
			var resp *gitlab.Response
			var err error
			is, resp, err = r.client.Issues.CreateIssue(r.project, opt, opts...)
			return resp, err
		})
		if err == nil {
			return done(is)
		}
		lastErr = fmt.Errorf("gitlabx: report %s: create issue: %w", fp, err)
		if !mayRetryWrite(ctx, err) {
			return ReportResult{Fingerprint: fp}, lastErr
		}
		r.logger().Warn("create issue failed; checking whether it was applied", "fingerprint", fp, "attempt", attempt, "err", err)
		// The request may have been applied before its answer was lost.
		is, ferr := r.newest(ctx, key, rep.RunID)
		if ferr != nil {
			return ReportResult{Fingerprint: fp}, errors.Join(lastErr, ferr)
		}
		if is != nil {
			return done(is)
		}
		if attempt < r.attempts() {
			if err := r.pause(ctx, attempt, err); err != nil {
				return ReportResult{Fingerprint: fp}, fmt.Errorf("gitlabx: report %s: create issue: %w", fp, err)
			}
		}
	}
	return ReportResult{Fingerprint: fp}, lastErr
}

// newest looks among the reporter's most recently created issues for one
// that this run filed under the marker value key.
func (r *IssueReporter) newest(ctx context.Context, key, runID string) (*gitlab.Issue, error) {
	opt := &gitlab.ListProjectIssuesOptions{
		ListOptions: gitlab.ListOptions{PerPage: 20, Page: 1},
		State:       gitlab.Ptr("all"),
		Labels:      &gitlab.LabelOptions{r.labels()[0]},
		AuthorID:    gitlab.Ptr(r.me),
		OrderBy:     gitlab.Ptr("created_at"),
		Sort:        gitlab.Ptr("desc"),
	}
	var page []*gitlab.Issue
	err := r.read(ctx, "list newest issues", func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
		var resp *gitlab.Response
		var err error
		page, resp, err = r.client.Issues.ListProjectIssues(r.project, opt, opts...)
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	for _, is := range page {
		if is.Author != nil && is.Author.ID == r.me && hasMarker(is.Description, "fingerprint", key) && hasMarker(is.Description, "run", runID) {
			return is, nil
		}
	}
	return nil, nil
}

func (r *IssueReporter) reopen(ctx context.Context, is *gitlab.Issue) error {
	// Reopening twice is harmless, so it is retried like a read.
	opt := &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("reopen")}
	if slices.Contains(is.Labels, r.fixedLabel()) {
		opt.RemoveLabels = &gitlab.LabelOptions{r.fixedLabel()}
	}
	if r.QuarantineLabel != "" {
		opt.AddLabels = &gitlab.LabelOptions{r.QuarantineLabel}
	}
	err := r.read(ctx, fmt.Sprintf("reopen issue %d", is.IID), func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
		_, resp, err := r.client.Issues.UpdateIssue(r.project, is.IID, opt, opts...)
		return resp, err
	})
	if err != nil {
		return err
	}
	r.logger().Info("issue reopened", "iid", is.IID, "url", is.WebURL)
	is.State = "opened"
	is.Labels = slices.DeleteFunc(is.Labels, func(l string) bool { return l == r.fixedLabel() })
	return nil
}

func (r *IssueReporter) comment(ctx context.Context, rep Report, is *gitlab.Issue) (ReportResult, error) {
	fp := rep.Fingerprint
	res := ReportResult{IID: is.IID, WebURL: is.WebURL, Fingerprint: fp}
	done, err := r.seen(ctx, is, rep.RunID)
	if err != nil {
		return res, err
	}
	if done {
		res.Action = ReportUnchanged
		return res, nil
	}
	body := marker("fingerprint", MarkerValue(fp)) + " " + marker("run", rep.RunID) + "\n" + seenLine("Seen again", rep) + "\n"
	if err := r.note(ctx, is, rep.RunID, body); err != nil {
		return res, fmt.Errorf("gitlabx: report %s: %w", fp, err)
	}
	r.logger().Info("issue commented", "fingerprint", fp, "iid", is.IID, "occurrences", rep.Occurrences)
	res.Action = ReportCommented
	return res, nil
}

// note adds body, which carries the run marker of runID, to the issue,
// once: after a failed attempt it looks for the note before trying again.
func (r *IssueReporter) note(ctx context.Context, is *gitlab.Issue, runID, body string) error {
	runMark := marker("run", runID)
	var lastErr error
	for attempt := 1; attempt <= r.attempts(); attempt++ {
		err := r.send(ctx, func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
			_, resp, err := r.client.Notes.CreateIssueNote(r.project, is.IID, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr(body)}, opts...)
			return resp, err
		})
		if err == nil {
			is.UserNotesCount++
			return nil
		}
		lastErr = fmt.Errorf("comment on issue %d: %w", is.IID, err)
		if !mayRetryWrite(ctx, err) {
			return lastErr
		}
		r.logger().Warn("comment failed; checking whether it was applied", "iid", is.IID, "attempt", attempt, "err", err)
		done, ferr := r.hasNote(ctx, is.IID, runMark)
		if ferr != nil {
			return errors.Join(lastErr, ferr)
		}
		if done {
			is.UserNotesCount++
			return nil
		}
		if attempt < r.attempts() {
			if err := r.pause(ctx, attempt, err); err != nil {
				return fmt.Errorf("comment on issue %d: %w", is.IID, err)
			}
		}
	}
	return lastErr
}

// seen reports whether the run was recorded on the issue: it filed the
// issue, or commented on it.
func (r *IssueReporter) seen(ctx context.Context, is *gitlab.Issue, runID string) (bool, error) {
	mark := marker("run", runID)
	if strings.Contains(is.Description, mark) {
		return true, nil
	}
	if is.UserNotesCount == 0 {
		return false, nil // nothing to look through
	}
	return r.hasNote(ctx, is.IID, mark)
}

// hasNote reports whether the issue has a note by the reporter's user
// containing mark. System notes are skipped: GitLab attributes them to the
// user whose action caused them, which can be the reporter's, and they are
// never a comment the reporter wrote.
func (r *IssueReporter) hasNote(ctx context.Context, iid int64, mark string) (bool, error) {
	opt := &gitlab.ListIssueNotesOptions{
		ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1},
		OrderBy:     gitlab.Ptr("created_at"),
		Sort:        gitlab.Ptr("desc"),
	}
	for {
		var notes []*gitlab.Note
		var resp *gitlab.Response
		err := r.read(ctx, fmt.Sprintf("list notes of issue %d", iid), func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
			var err error
			notes, resp, err = r.client.Notes.ListIssueNotes(r.project, iid, opt, opts...)
			return resp, err
		})
		if err != nil {
			return false, err
		}
		if slices.ContainsFunc(notes, func(n *gitlab.Note) bool { return !n.System && n.Author.ID == r.me && strings.Contains(n.Body, mark) }) {
			return true, nil
		}
		if resp == nil || resp.NextPage == 0 {
			return false, nil
		}
		opt.Page = resp.NextPage
	}
}

// seenLine says how often and where, and in which variants:
//
//	Seen again: 3 occurrences on `web1`, `web2` in `app.log`.
//	Variants: Read/Write 2 `40fa7fd1bbc67a41`, Write/Write 1 `9d1c2b3a4f5e6d7c`.
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
	if len(rep.Variants) > 0 {
		vs := make([]string, len(rep.Variants))
		for i, v := range rep.Variants {
			vs[i] = fmt.Sprintf("%s %d", strings.ReplaceAll(v.Name, "`", "'"), v.Count)
			if v.ID != "" {
				vs[i] += " " + codeSpans([]string{v.ID})[0]
			}
		}
		b.WriteString("\nVariants: ")
		b.WriteString(strings.Join(vs, ", "))
		b.WriteString(".")
	}
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
	b.WriteString(marker("fingerprint", MarkerValue(rep.Fingerprint)))
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
	fmt.Fprintf(&b, "\nFingerprint: `%s`", strings.ReplaceAll(rep.Fingerprint, "`", "'"))
	if key := MarkerValue(rep.Fingerprint); key != rep.Fingerprint {
		// GitLab's search indexes neither the marker (an HTML comment) nor a
		// word of 50 characters or more: show the short value in the text.
		fmt.Fprintf(&b, " (search: `%s`)", key)
	}
	b.WriteString("\n")
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
