package gitlabx

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// ledgerName is the value of the ledger issue's marker.
const ledgerName = "issue-reporter-runs"

// ledgerTitle is the title of the ledger issue.
const ledgerTitle = "opskit issue reporter: run ledger"

// ledger is IssueReporter's record of its runs: how many runs it counted,
// the last run's ID, and for each open issue's marker value the run in
// which it was last seen.
type ledger struct {
	run     int64
	lastRun string
	seen    map[string]int64
}

// parseLedger reads the ledger from the issue's description: lines
// "run N RUNID" and "seen VALUE N" in its code block.
func parseLedger(desc string) ledger {
	l := ledger{seen: map[string]int64{}}
	for line := range strings.Lines(desc) {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "run":
			if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				l.run, l.lastRun = n, f[2]
			}
		case len(f) == 3 && f[0] == "seen":
			if n, err := strconv.ParseInt(f[2], 10, 64); err == nil {
				l.seen[f[1]] = n
			}
		}
	}
	return l
}

func (l ledger) description() string {
	var b strings.Builder
	b.WriteString(marker("ledger", ledgerName))
	b.WriteString("\nopskit's gitlabx.IssueReporter counts its runs here, to close the issues of problems not seen for several runs (CloseAfterRuns). It rewrites this description at the end of each run; edits are lost.\n\n```text\n")
	fmt.Fprintf(&b, "run %d %s\n", l.run, l.lastRun)
	keys := make([]string, 0, len(l.seen))
	for k := range l.seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "seen %s %d\n", k, l.seen[k])
	}
	b.WriteString("```\n")
	return b.String()
}

// closeStale counts the run in the ledger, closes the open issues whose
// marker values were not seen for CloseAfterRuns runs, and writes the
// ledger. seen holds the marker values reported in this run.
func (r *IssueReporter) closeStale(ctx context.Context, idx *index, runID string, seen map[string]bool) ([]ReportResult, error) {
	l := ledger{seen: map[string]int64{}}
	if idx.ledger != nil {
		l = parseLedger(idx.ledger.Description)
	}
	before := l.description()
	if l.lastRun != runID {
		l.run++
		l.lastRun = runID
	}
	for k := range seen {
		l.seen[k] = l.run
	}
	var closed []ReportResult
	keep := map[string]bool{}
	for _, is := range idx.issues {
		vals := fingerprintMarkers(is.Description)
		if is.State == "closed" {
			continue
		}
		last, known := int64(0), false
		for _, v := range vals {
			if n, ok := l.seen[v]; ok {
				last, known = max(last, n), true
			}
		}
		if !known {
			// Filed before auto-close was on: count from this run.
			last = l.run
			l.seen[vals[0]] = last
		}
		if l.run-last < int64(r.CloseAfterRuns) {
			for _, v := range vals {
				keep[v] = true
			}
			continue
		}
		if err := r.closeIssue(ctx, is, runID, l.run-last); err != nil {
			return closed, err
		}
		closed = append(closed, ReportResult{Action: ReportClosed, IID: is.IID, WebURL: is.WebURL, Fingerprint: vals[0]})
	}
	for k := range l.seen {
		if !keep[k] && !seen[k] {
			delete(l.seen, k) // closed issues start again when reopened
		}
	}
	desc := l.description()
	if desc == before && idx.ledger != nil {
		return closed, nil
	}
	return closed, r.writeLedger(ctx, idx, desc)
}

// closeIssue comments on the issue, labels it FixedLabel and closes it.
func (r *IssueReporter) closeIssue(ctx context.Context, is *gitlab.Issue, runID string, runs int64) error {
	body := marker("run", runID) + fmt.Sprintf("\nNot seen in the last %d runs: closing, labelled `%s`. If it comes back, this issue is reopened.\n", runs, r.fixedLabel())
	if err := r.note(ctx, is, runID, body); err != nil {
		return fmt.Errorf("gitlabx: report: close stale issue: %w", err)
	}
	opt := &gitlab.UpdateIssueOptions{
		StateEvent: gitlab.Ptr("close"),
		AddLabels:  &gitlab.LabelOptions{r.fixedLabel()},
	}
	if r.QuarantineLabel != "" {
		opt.RemoveLabels = &gitlab.LabelOptions{r.QuarantineLabel}
	}
	err := r.read(ctx, fmt.Sprintf("close issue %d", is.IID), func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
		_, resp, err := r.client.Issues.UpdateIssue(r.project, is.IID, opt, opts...)
		return resp, err
	})
	if err != nil {
		return err
	}
	is.State = "closed"
	is.Labels = append(is.Labels, r.fixedLabel())
	r.logger().Info("issue closed: not seen", "iid", is.IID, "runs", runs, "url", is.WebURL)
	return nil
}

// writeLedger updates the ledger issue, or creates it (closed) on the first
// run. Setting a description twice is harmless; a lost create answer is
// looked for before creating again.
func (r *IssueReporter) writeLedger(ctx context.Context, idx *index, desc string) error {
	if is := idx.ledger; is != nil {
		err := r.read(ctx, "update ledger", func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
			_, resp, err := r.client.Issues.UpdateIssue(r.project, is.IID, &gitlab.UpdateIssueOptions{Description: gitlab.Ptr(desc)}, opts...)
			return resp, err
		})
		if err == nil {
			is.Description = desc
		}
		return err
	}
	opt := &gitlab.CreateIssueOptions{
		Title:       gitlab.Ptr(ledgerTitle),
		Description: gitlab.Ptr(desc),
		Labels:      &gitlab.LabelOptions{r.labels()[0]},
	}
	var is *gitlab.Issue
	var lastErr error
	for attempt := 1; attempt <= r.attempts() && is == nil; attempt++ {
		err := r.send(ctx, func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
			var resp *gitlab.Response
			var err error
			is, resp, err = r.client.Issues.CreateIssue(r.project, opt, opts...)
			return resp, err
		})
		if err == nil {
			break
		}
		lastErr = fmt.Errorf("gitlabx: report: create ledger: %w", err)
		if !mayRetryWrite(ctx, err) {
			return lastErr
		}
		x, lerr := r.load(ctx)
		if lerr != nil {
			return lerr
		}
		if is = x.ledger; is == nil && attempt < r.attempts() {
			if err := r.pause(ctx, attempt, err); err != nil {
				return fmt.Errorf("gitlabx: report: create ledger: %w", err)
			}
		}
	}
	if is == nil {
		return lastErr
	}
	idx.ledger = is
	return r.read(ctx, "close ledger", func(opts []gitlab.RequestOptionFunc) (*gitlab.Response, error) {
		_, resp, err := r.client.Issues.UpdateIssue(r.project, is.IID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")}, opts...)
		return resp, err
	})
}
