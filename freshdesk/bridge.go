package freshdesk

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/internal/gitlaburl"
)

// BridgePrefix starts the text of the private note the bridge leaves on a
// ticket. Notes that start with it are the bridge's own and are never
// copied to GitLab.
const BridgePrefix = "[gitlab-bridge]"

// DefaultMaxUploadSize is GitLab's default attachment size limit (100 MiB).
const DefaultMaxUploadSize = 100 << 20

// BridgeConfig configures a Bridge. The zero value of each optional field
// selects the documented default.
type BridgeConfig struct {
	// Freshdesk reads tickets and writes the link-back note. Required.
	Freshdesk *Client
	// GitLab writes issues, notes and uploads. Required. Build it with
	// gitlab.NewClient; the bridge disables retries of its own writes
	// except after a 429.
	GitLab *gitlab.Client
	// Project is the GitLab project (numeric ID or "group/name"). Required.
	Project any
	// FreshdeskURL is the help desk's web address,
	// "https://<domain>.freshdesk.com", used for links to tickets. Required.
	FreshdeskURL string
	// AgentID is the Freshdesk user ID of the API key's agent. When set,
	// only that user's notes starting with BridgePrefix count as the
	// bridge's own; 0 trusts the prefix on any private agent note.
	AgentID int64
	// CustomField, if set (e.g. "cf_gitlab_issue"), receives the issue URL
	// and is used to find the issue again.
	CustomField string
	// Labels are put on new issues.
	Labels []string
	// MaxUploadSize is the largest attachment copied into GitLab; larger
	// ones (or ones GitLab refuses with 413) become a link to the ticket
	// with a remark. 0 means DefaultMaxUploadSize.
	MaxUploadSize int64
	// Parallel bounds the attachments copied at once. 0 means 4.
	Parallel int
	// Token is the bearer token Handler requires. Required for Handler.
	Token Secret
	// AllowedOrigin is the Freshdesk origin Handler answers CORS requests
	// for, e.g. "https://acme.freshdesk.com". Empty allows none.
	AllowedOrigin string
	// EscalateTimeout bounds one escalation started by Handler, which goes
	// on if the browser disconnects, or run from Intake. 0 means 10 minutes.
	EscalateTimeout time.Duration
	// Intake, when set, makes Handler queue escalations instead of running
	// them while the browser waits: POST answers 202 {"status":"queued",
	// "id"} once the intake stored the escalation, and GET
	// /escalations/{id} tells the outcome (see Enqueue, Start, Result). A
	// gitlabx/jetstream Intake on a stream of its own (for example Stream
	// "FRESHDESK_ESCALATIONS", Subject "freshdesk.escalations") makes an
	// accepted escalation survive a crash and lets replicas share the work,
	// one ticket's escalations still one at a time. nil (the default) runs
	// escalations synchronously in the request, serialized per ticket
	// within this process.
	Intake gitlabx.Intake
	// Results keeps the outcome of queued escalations. Replicas must share
	// it (gitlabx/jetstream's Results). nil means a MemoryResults (10,000
	// results for an hour), right for one replica.
	Results ResultStore
	// Sync configures what tickets hear back when their issues move; it is
	// used by Register, HandleIssue and HandleNote.
	Sync SyncConfig
	// Logger receives progress and failures; nil discards.
	Logger *slog.Logger
	// Metrics, when set, counts escalations, copied notes and files, and
	// sync actions (see NewMetrics). nil counts nothing.
	Metrics *Metrics
	// TracerProvider, when set, opens a span per escalation
	// ("freshdesk.Escalate") and per GitLab event handled
	// ("freshdesk.SyncIssue", "freshdesk.SyncNote"). The API calls become
	// child spans when the clients' HTTP transports are wrapped with
	// observe.NewTransport on the same provider. nil means no spans.
	TracerProvider trace.TracerProvider
}

// Bridge copies Freshdesk tickets into GitLab issues. It is safe for
// concurrent use; escalations of one ticket run one at a time (within this
// process; with BridgeConfig.Intake, across every replica sharing it).
// With an Intake, the caller must call Shutdown when finished.
type Bridge struct {
	cfg     BridgeConfig
	pid     string // escaped project path segment, for requests built here
	proj    any    // the project as client-go's services take it
	logger  *slog.Logger
	tracer  trace.Tracer
	locks   keyedMutex
	results ResultStore

	selfMu sync.Mutex
	selfID int64 // the GitLab user of cfg.GitLab, learned once from GET /user
	tmpl   syncTemplates
}

// Escalation is the outcome of Bridge.Escalate.
type Escalation struct {
	IssueURL          string `json:"issue_url"`
	IssueIID          int64  `json:"-"`
	Created           bool   `json:"created"`            // the issue was created by this call
	NotesAdded        int    `json:"notes_added"`        // conversations copied by this call
	AttachmentsCopied int    `json:"attachments_copied"` // files uploaded by this call
}

// NewBridge checks cfg and returns a Bridge. Errors wrap ErrConfig.
func NewBridge(cfg BridgeConfig) (*Bridge, error) {
	if cfg.Freshdesk == nil || cfg.GitLab == nil {
		return nil, fmt.Errorf("%w: Freshdesk and GitLab clients are required", ErrConfig)
	}
	var pid string
	switch p := cfg.Project.(type) {
	case int:
		pid = strconv.Itoa(p)
	case int64:
		pid = strconv.FormatInt(p, 10)
	case string:
		if p == "" {
			return nil, fmt.Errorf("%w: Project is empty", ErrConfig)
		}
		pid = gitlab.PathEscape(p)
	default:
		return nil, fmt.Errorf("%w: Project must be an int, int64 or string, not %T", ErrConfig, cfg.Project)
	}
	if !strings.HasPrefix(cfg.FreshdeskURL, "http://") && !strings.HasPrefix(cfg.FreshdeskURL, "https://") {
		return nil, fmt.Errorf("%w: FreshdeskURL %q is not an http(s) URL", ErrConfig, cfg.FreshdeskURL)
	}
	cfg.FreshdeskURL = strings.TrimRight(cfg.FreshdeskURL, "/")
	if cfg.MaxUploadSize == 0 {
		cfg.MaxUploadSize = DefaultMaxUploadSize
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.EscalateTimeout == 0 {
		cfg.EscalateTimeout = 10 * time.Minute
	}
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	tmpl, err := parseSyncTemplates(cfg.Sync)
	if err != nil {
		return nil, err
	}
	results := cfg.Results
	if results == nil {
		results = &MemoryResults{}
	}
	return &Bridge{cfg: cfg, pid: pid, proj: cfg.Project, logger: l, tracer: tracer(cfg.TracerProvider), tmpl: tmpl, results: results}, nil
}

// Escalate brings the GitLab issue of a ticket up to date, creating it on
// the first call: it finds the issue by its hidden ticket marker (or the
// custom field), copies every conversation not copied yet (in order, one
// note each, private notes as internal notes, attachments uploaded), and
// leaves one private link-back note on the ticket. Run again after any
// failure, it completes the work without duplicates.
//
// An unknown ticket gives an error matching ErrNotFound, a wrong API key
// one matching ErrUnauthorized, an attachment whose URL keeps answering 403
// one matching ErrAttachmentExpired. On error the Escalation holds what was
// done before the failure.
func (b *Bridge) Escalate(ctx context.Context, ticketID int64) (Escalation, error) {
	start := time.Now()
	b.cfg.Metrics.escalationStarted()
	ctx, span := b.startSpan(ctx, "freshdesk.Escalate", attribute.Int64("freshdesk.ticket_id", ticketID))
	esc, err := b.escalate(ctx, ticketID)
	result := escalationResult(esc, err)
	b.cfg.Metrics.escalationEnded(result, esc, time.Since(start))
	span.SetAttributes(attribute.Int("freshdesk.notes_added", esc.NotesAdded), attribute.Int("freshdesk.attachments_copied", esc.AttachmentsCopied))
	if esc.IssueURL != "" {
		span.SetAttributes(attribute.Int64("gitlab.issue_iid", esc.IssueIID), attribute.String("gitlab.issue_url", esc.IssueURL))
	}
	endSpan(span, result, err)
	return esc, err
}

func (b *Bridge) escalate(ctx context.Context, ticketID int64) (Escalation, error) {
	var esc Escalation
	unlock, err := b.locks.lock(ctx, ticketID)
	if err != nil {
		return esc, fmt.Errorf("freshdesk: escalate ticket %d: %w", ticketID, err)
	}
	defer unlock()
	log := b.logger.With(slog.Int64("ticket", ticketID))

	t, err := b.cfg.Freshdesk.Ticket(ctx, ticketID)
	if err != nil {
		return esc, fmt.Errorf("freshdesk: escalate ticket %d: %w", ticketID, err)
	}
	convs, err := b.cfg.Freshdesk.Conversations(ctx, ticketID)
	if err != nil {
		return esc, fmt.Errorf("freshdesk: escalate ticket %d: %w", ticketID, err)
	}
	issue, err := b.findIssue(ctx, t, convs)
	if err != nil {
		return esc, fmt.Errorf("freshdesk: escalate ticket %d: find issue: %w", ticketID, err)
	}
	if issue == nil {
		var copied int
		issue, copied, err = b.createIssue(ctx, t)
		esc.AttachmentsCopied += copied
		if err != nil {
			return esc, fmt.Errorf("freshdesk: escalate ticket %d: create issue: %w", ticketID, err)
		}
		esc.Created = true
		log.LogAttrs(ctx, slog.LevelInfo, "created issue", slog.Int64("iid", issue.IID), slog.String("url", issue.WebURL))
	}
	esc.IssueURL, esc.IssueIID = issue.WebURL, issue.IID

	done, err := b.copiedConversations(ctx, issue.IID)
	if err != nil {
		return esc, fmt.Errorf("freshdesk: escalate ticket %d: list notes of issue %d: %w", ticketID, issue.IID, err)
	}
	var todo []Conversation
	for _, c := range convs {
		if !done[c.ID] && !b.isOwnNote(c) {
			todo = append(todo, c)
		}
	}
	notes, files, err := b.copyConversations(ctx, t, issue.IID, todo)
	esc.NotesAdded += notes
	esc.AttachmentsCopied += files
	if err != nil {
		return esc, fmt.Errorf("freshdesk: escalate ticket %d: %w", ticketID, err)
	}
	if err := b.linkBack(ctx, t, convs, issue.WebURL); err != nil {
		return esc, fmt.Errorf("freshdesk: escalate ticket %d: link back: %w", ticketID, err)
	}
	log.LogAttrs(ctx, slog.LevelInfo, "escalated", slog.String("issue", issue.WebURL),
		slog.Bool("created", esc.Created), slog.Int("notes_added", esc.NotesAdded), slog.Int("attachments_copied", esc.AttachmentsCopied))
	return esc, nil
}

// TicketMarker is the hidden first line of the description of the issue a
// ticket was escalated to.
func TicketMarker(ticketID int64) string {
	return fmt.Sprintf("<!-- opskit:freshdesk-ticket=%d -->", ticketID)
}

// ConversationMarker is the hidden first line of the GitLab note a
// conversation was copied to.
func ConversationMarker(conversationID int64) string {
	return fmt.Sprintf("<!-- opskit:freshdesk-conversation=%d -->", conversationID)
}

var conversationMarkerRE = regexp.MustCompile(`^<!-- opskit:freshdesk-conversation=([0-9]+) -->$`)

// self returns the ID of the GitLab user the bridge acts as, asked once
// from GET /user. Only issues and notes that this user wrote are the
// bridge's own: anyone can paste a marker into an issue or a note.
func (b *Bridge) self(ctx context.Context) (int64, error) {
	b.selfMu.Lock()
	defer b.selfMu.Unlock()
	if b.selfID != 0 {
		return b.selfID, nil
	}
	u, _, err := b.cfg.GitLab.Users.CurrentUser(gitlab.WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("get the bridge's GitLab user: %w", err)
	}
	b.selfID = u.ID
	return u.ID, nil
}

// firstLine is s up to its first newline, without a trailing "\r".
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSuffix(l, "\r")
}

// writeOpts are the request options of a GitLab write: retried only after
// a 429 (which GitLab answers before doing anything), never after a 5xx or
// a broken connection, which could duplicate the write.
func writeOpts(ctx context.Context) []gitlab.RequestOptionFunc {
	return []gitlab.RequestOptionFunc{gitlab.WithContext(ctx), gitlab.WithRequestRetry(retryOnlyRateLimited)}
}

func retryOnlyRateLimited(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err == nil && resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		return true, nil
	}
	return false, err
}

func neverRetry(ctx context.Context, _ *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return false, err
}

// maxTitle is the longest issue title GitLab accepts, in characters
// (Issuable's validates :title, length: { maximum: 255 }).
const maxTitle = 255

// recentIssues is how many of the bridge user's newest issues findIssue
// reads when the ticket holds no link yet: enough to find an issue created
// by an escalation that failed before it could link back.
const recentIssues = 100

// findIssue returns the ticket's issue, or nil if there is none yet. It
// never searches: GitLab's issue search is full-text (the marker, an HTML
// comment, is not indexed) and limited to about 30 requests a minute. In
// order it follows
//
//   - the issue the ticket's custom field names (written only by the bridge),
//   - the issue linked from the bridge's own note on the ticket,
//   - the bridge user's newest issues, for an escalation that created its
//     issue but failed before it linked back.
//
// Only an issue that the bridge's own user wrote with the ticket's marker
// on its first line counts (or the custom field's, whose link only the
// bridge writes): anyone can paste a marker into an issue.
func (b *Bridge) findIssue(ctx context.Context, t *Ticket, convs []Conversation) (*gitlab.Issue, error) {
	marker := TicketMarker(t.ID)
	self, err := b.self(ctx)
	if err != nil {
		return nil, err
	}
	ours := func(is *gitlab.Issue) bool {
		return is != nil && firstLine(is.Description) == marker && is.Author != nil && is.Author.ID == self
	}
	get := func(rawURL string) (*gitlab.Issue, error) {
		_, iid, ok := gitlaburl.Issue(rawURL)
		if !ok {
			return nil, nil
		}
		is, _, err := b.cfg.GitLab.Issues.GetIssue(b.proj, iid, gitlab.WithContext(ctx))
		if errors.Is(err, gitlab.ErrNotFound) {
			return nil, nil
		}
		return is, err
	}
	if b.cfg.CustomField != "" {
		if v, ok := t.CustomFields[b.cfg.CustomField].(string); ok && v != "" {
			is, err := get(v)
			if err != nil {
				return nil, err
			}
			// The field is written only by the bridge; trust it even if
			// someone edited the marker out of the description.
			if is != nil && (firstLine(is.Description) == marker || is.WebURL == v) {
				return is, nil
			}
		}
	}
	for _, c := range convs {
		if !b.isOwnNote(c) {
			continue
		}
		for _, u := range linkedURLs(c) {
			is, err := get(u)
			if err != nil {
				return nil, err
			}
			if ours(is) {
				return is, nil
			}
		}
	}
	issues, _, err := b.cfg.GitLab.Issues.ListProjectIssues(b.proj, &gitlab.ListProjectIssuesOptions{
		ListOptions: gitlab.ListOptions{PerPage: recentIssues},
		AuthorID:    gitlab.Ptr(self),
		OrderBy:     gitlab.Ptr("created_at"),
		Sort:        gitlab.Ptr("desc"),
	}, gitlab.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	var oldest *gitlab.Issue
	for _, is := range issues {
		if ours(is) {
			oldest = is // newest first: the last match is the oldest
		}
	}
	return oldest, nil
}

var hrefRE = regexp.MustCompile(`href="([^"]+)"`)

// linkedURLs returns the links in a note the bridge left on a ticket.
func linkedURLs(c Conversation) []string {
	var out []string
	for _, m := range hrefRE.FindAllStringSubmatch(c.Body, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	for _, f := range strings.Fields(c.BodyText) {
		if strings.HasPrefix(f, "http://") || strings.HasPrefix(f, "https://") {
			out = append(out, f)
		}
	}
	return out
}

// copiedConversations returns the IDs of the conversations already copied
// into the issue, from the markers on the first lines of the notes the
// bridge's own user wrote.
func (b *Bridge) copiedConversations(ctx context.Context, iid int64) (map[int64]bool, error) {
	self, err := b.self(ctx)
	if err != nil {
		return nil, err
	}
	done := map[int64]bool{}
	opt := &gitlab.ListIssueNotesOptions{ListOptions: gitlab.ListOptions{PerPage: 100}}
	for {
		notes, resp, err := b.cfg.GitLab.Notes.ListIssueNotes(b.proj, iid, opt, gitlab.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		for _, n := range notes {
			if n.Author.ID != self || n.System {
				continue
			}
			if m := conversationMarkerRE.FindStringSubmatch(firstLine(n.Body)); m != nil {
				id, _ := strconv.ParseInt(m[1], 10, 64)
				done[id] = true
			}
		}
		if resp.NextPage == 0 {
			return done, nil
		}
		opt.Page = resp.NextPage
	}
}

// isOwnNote reports whether c is a note or reply the bridge wrote on the
// ticket: a private note that starts with BridgePrefix, or a public reply
// that carries the bridge's sync reference line.
func (b *Bridge) isOwnNote(c Conversation) bool {
	if c.Incoming {
		return false
	}
	if b.cfg.AgentID != 0 && c.UserID != b.cfg.AgentID {
		return false
	}
	if !c.Private {
		const tag = BridgePrefix + " ref " + SyncRefPrefix
		return strings.Contains(c.BodyText, tag) || strings.Contains(htmlText(c.Body), tag)
	}
	return strings.HasPrefix(strings.TrimSpace(c.BodyText), BridgePrefix) ||
		strings.HasPrefix(strings.TrimSpace(htmlText(c.Body)), BridgePrefix)
}

func (b *Bridge) ticketURL(id int64) string {
	return fmt.Sprintf("%s/a/tickets/%d", b.cfg.FreshdeskURL, id)
}

func (b *Bridge) createIssue(ctx context.Context, t *Ticket) (*gitlab.Issue, int, error) {
	files, copied, err := b.uploadAll(ctx, t.ID, [][]Attachment{t.Attachments})
	if err != nil {
		return nil, copied, err
	}
	var d strings.Builder
	d.WriteString(TicketMarker(t.ID) + "\n")
	fmt.Fprintf(&d, "Escalated from Freshdesk ticket [#%d](<%s>)", t.ID, safeURL(b.ticketURL(t.ID)))
	if r := t.Requester; r != nil {
		d.WriteString(", requested by " + person(r.Name, r.Email))
	} else if t.RequesterID != 0 {
		fmt.Fprintf(&d, ", requested by contact %d", t.RequesterID)
	}
	if !t.CreatedAt.IsZero() {
		d.WriteString(" on " + t.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"))
	}
	d.WriteString(".\n\n")
	if body := Markdown(t.Description); body != "" {
		d.WriteString(body + "\n")
	}
	writeAttachments(&d, files[0])
	title := strings.TrimSpace(collapse(t.Subject))
	if title == "" {
		title = fmt.Sprintf("Freshdesk ticket %d", t.ID)
	}
	if r := []rune(title); len(r) > maxTitle {
		title = strings.TrimSpace(string(r[:maxTitle-1])) + "…"
	}
	opt := &gitlab.CreateIssueOptions{
		Title:       gitlab.Ptr(title),
		Description: gitlab.Ptr(strings.TrimRight(d.String(), "\n")),
	}
	if len(b.cfg.Labels) > 0 {
		opt.Labels = gitlab.Ptr(gitlab.LabelOptions(b.cfg.Labels))
	}
	is, _, err := b.cfg.GitLab.Issues.CreateIssue(b.proj, opt, writeOpts(ctx)...)
	if err != nil {
		return nil, copied, err
	}
	return is, copied, nil
}

// person renders a name and e-mail address as inert Markdown.
func person(name, email string) string {
	name, email = strings.TrimSpace(collapse(name)), strings.TrimSpace(collapse(email))
	switch {
	case name != "" && email != "":
		return "**" + escapeText(name) + "** (" + escapeText(email) + ")"
	case name != "":
		return "**" + escapeText(name) + "**"
	case email != "":
		return "**" + escapeText(email) + "**"
	}
	return "**unknown**"
}

func writeAttachments(d *strings.Builder, files []string) {
	if len(files) == 0 {
		return
	}
	d.WriteString("\n**Attachments**\n\n")
	for _, f := range files {
		d.WriteString("- " + f + "\n")
	}
}

// copyConversations uploads the attachments of todo in parallel (bounded)
// while creating one note per conversation, in order. It stops at the
// first failure; the notes made so far stay and are found by a re-run.
func (b *Bridge) copyConversations(ctx context.Context, t *Ticket, iid int64, todo []Conversation) (notes, files int, err error) {
	if len(todo) == 0 {
		return 0, 0, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type pending struct {
		done chan struct{}
		md   string
		ok   bool
		err  error
	}
	results := make([][]*pending, len(todo))
	for i, c := range todo {
		for range c.Attachments {
			results[i] = append(results[i], &pending{done: make(chan struct{})})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.cfg.Parallel)
	scheduled := make(chan struct{})
	go func() {
		defer close(scheduled)
		for i, c := range todo {
			for j, a := range c.Attachments {
				p := results[i][j]
				if gctx.Err() != nil {
					p.err = gctx.Err()
					close(p.done)
					continue
				}
				g.Go(func() error {
					defer close(p.done)
					p.md, p.ok, p.err = b.copyAttachment(gctx, t.ID, a)
					return p.err
				})
			}
		}
	}()
	defer func() {
		cancel()
		<-scheduled
		_ = g.Wait()
	}()

	authors, err := b.authors(ctx, t, todo)
	if err != nil {
		return 0, 0, err
	}
	for i, c := range todo {
		var mds []string
		for _, p := range results[i] {
			select {
			case <-p.done:
			case <-ctx.Done():
				return notes, files, ctx.Err()
			}
			if p.err != nil {
				return notes, files, p.err
			}
			mds = append(mds, p.md)
			if p.ok {
				files++
			}
		}
		body := b.noteBody(c, authors, mds)
		opt := &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr(body)}
		if c.Private {
			opt.Internal = gitlab.Ptr(true)
		}
		if _, _, err := b.cfg.GitLab.Notes.CreateIssueNote(b.proj, iid, opt, writeOpts(ctx)...); err != nil {
			return notes, files, fmt.Errorf("copy conversation %d: %w", c.ID, err)
		}
		notes++
	}
	return notes, files, nil
}

// authors names the writers of the conversations: the requester from the
// ticket, agents (the authors of outgoing replies and notes) looked up once
// each. An agent who cannot be looked up (deleted, or the API key may not
// read agents) is named by user ID; only a cancelled context is an error.
func (b *Bridge) authors(ctx context.Context, t *Ticket, convs []Conversation) (map[int64]string, error) {
	m := map[int64]string{}
	if r := t.Requester; r != nil {
		m[r.ID] = person(r.Name, r.Email)
	}
	for _, c := range convs {
		if c.Incoming || c.UserID == 0 {
			continue
		}
		if _, ok := m[c.UserID]; ok {
			continue
		}
		a, err := b.cfg.Freshdesk.Agent(ctx, c.UserID)
		switch {
		case err == nil:
			m[c.UserID] = person(a.Name, a.Email)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			b.logger.LogAttrs(ctx, slog.LevelInfo, "agent not looked up, naming by id",
				slog.Int64("user", c.UserID), slog.String("err", err.Error()))
			m[c.UserID] = ""
		}
	}
	return m, nil
}

func (b *Bridge) noteBody(c Conversation, authors map[int64]string, files []string) string {
	var d strings.Builder
	d.WriteString(ConversationMarker(c.ID) + "\n")
	who := authors[c.UserID]
	if who == "" && c.FromEmail != "" {
		who = "**" + escapeText(strings.TrimSpace(collapse(c.FromEmail))) + "**"
	}
	switch {
	case who != "":
	case c.UserID == 0:
		who = "**unknown author**"
	case c.Incoming:
		who = fmt.Sprintf("**contact %d**", c.UserID)
	default:
		who = fmt.Sprintf("**agent %d**", c.UserID)
	}
	verb := "replied"
	switch {
	case c.Incoming:
		verb = "wrote"
	case c.Private:
		verb = "added a private note"
	case c.Source == 2:
		verb = "added a public note"
	}
	fmt.Fprintf(&d, "%s %s on %s:\n\n", who, verb, c.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"))
	if body := Markdown(c.Body); body != "" {
		d.WriteString(body + "\n")
	}
	writeAttachments(&d, files)
	return strings.TrimRight(d.String(), "\n")
}

// uploadAll copies groups of attachments in parallel and returns the
// Markdown of each, grouped as given.
func (b *Bridge) uploadAll(ctx context.Context, ticketID int64, groups [][]Attachment) ([][]string, int, error) {
	out := make([][]string, len(groups))
	ok := make([][]bool, len(groups))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.cfg.Parallel)
	for i, as := range groups {
		out[i] = make([]string, len(as))
		ok[i] = make([]bool, len(as))
		for j, a := range as {
			g.Go(func() error {
				var err error
				out[i][j], ok[i][j], err = b.copyAttachment(gctx, ticketID, a)
				return err
			})
		}
	}
	err := g.Wait()
	n := 0
	for _, row := range ok {
		for _, v := range row {
			if v {
				n++
			}
		}
	}
	return out, n, err
}

// copyAttachment streams one attachment into a GitLab markdown upload and
// returns the Markdown to embed. A file over the size limit, or refused by
// GitLab with 413, becomes a remark with a link to the ticket (ok false).
func (b *Bridge) copyAttachment(ctx context.Context, ticketID int64, a Attachment) (md string, ok bool, err error) {
	if a.Size > b.cfg.MaxUploadSize {
		b.cfg.Metrics.attachmentLinked()
		return b.tooLarge(ticketID, a), false, nil
	}
	for attempt := 1; ; attempt++ {
		md, err = b.uploadOnce(ctx, ticketID, a)
		var er *gitlab.ErrorResponse
		switch {
		case err == nil:
			return md, true, nil
		case errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusRequestEntityTooLarge:
			b.cfg.Metrics.attachmentLinked()
			return b.tooLarge(ticketID, a), false, nil
		case errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusTooManyRequests && attempt < 4:
			d := retryAfter(er.Response.Header.Get("Retry-After"), time.Now())
			if d > b.cfg.Freshdesk.maxW {
				return "", false, fmt.Errorf("upload %q: %w", a.Name, err)
			}
			if werr := b.cfg.Freshdesk.wait(ctx, d); werr != nil {
				return "", false, werr
			}
		default:
			return "", false, fmt.Errorf("copy attachment %d (%s): %w", a.ID, a.Name, err)
		}
	}
}

func (b *Bridge) tooLarge(ticketID int64, a Attachment) string {
	return fmt.Sprintf("%s (%s) was not copied: it is larger than the GitLab upload limit of %s. Download it from [the Freshdesk ticket](<%s>).",
		escapeText(a.Name), humanSize(a.Size), humanSize(b.cfg.MaxUploadSize), safeURL(b.ticketURL(ticketID)))
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// errNoReplay stops client-go from sending a streamed body a second time.
var errNoReplay = errors.New("freshdesk: streamed upload cannot be sent again")

// uploadOnce downloads the attachment and streams it, through an io.Pipe,
// as the multipart body of POST /projects/:id/uploads. client-go's own
// UploadProjectMarkdown copies the whole file into memory first, so the
// request is built with client-go's NewRequest and given a one-shot
// streaming body, then sent with its Do.
func (b *Bridge) uploadOnce(ctx context.Context, ticketID int64, a Attachment) (string, error) {
	body, err := b.cfg.Freshdesk.OpenAttachment(ctx, ticketID, a)
	if err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	copied := make(chan error, 1)
	go func() {
		defer body.Close()
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, quoteEscaper.Replace(uploadName(a.Name))))
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		w, err := mw.CreatePart(h)
		if err == nil {
			_, err = io.Copy(w, body)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
		copied <- err
	}()
	// Never retried by client-go: the streamed body cannot be sent twice.
	// copyAttachment starts over (download included) after a 429.
	req, err := b.cfg.GitLab.NewRequest(http.MethodPost, "projects/"+b.pid+"/uploads", nil,
		[]gitlab.RequestOptionFunc{gitlab.WithContext(ctx), gitlab.WithRequestRetry(neverRetry)})
	if err == nil {
		// retryablehttp calls the function once when the body is set, to
		// probe for a length, and closes what it gets; then once per attempt.
		calls := 0
		err = req.SetBody(retryablehttp.ReaderFunc(func() (io.Reader, error) {
			calls++
			switch calls {
			case 1:
				return struct{ io.Reader }{strings.NewReader("")}, nil
			case 2:
				return pr, nil
			}
			return nil, errNoReplay
		}))
		req.Header.Set("Content-Type", mw.FormDataContentType())
	}
	var f gitlab.ProjectMarkdownUploadedFile
	if err == nil {
		_, err = b.cfg.GitLab.Do(req, &f)
	}
	pr.CloseWithError(errors.Join(err, errNoReplay)) // unblock the copier if GitLab stopped reading
	if cerr := <-copied; err == nil && cerr != nil {
		err = fmt.Errorf("download: %w", cerr)
	}
	if err != nil {
		return "", err
	}
	return f.Markdown, nil
}

// uploadName keeps a file name GitLab will accept in a Markdown link.
func uploadName(name string) string {
	name = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\' || r < ' ' || r == 0x7f:
			return '_'
		}
		return r
	}, strings.TrimSpace(name))
	if name == "" || name == "." || name == ".." {
		return "attachment"
	}
	return name
}

// linkBack leaves the private link note on the ticket unless the bridge
// already left one for this issue, and sets the custom field if configured.
func (b *Bridge) linkBack(ctx context.Context, t *Ticket, convs []Conversation, issueURL string) error {
	have := false
	for _, c := range convs {
		if b.isOwnNote(c) && (strings.Contains(c.Body, issueURL) || strings.Contains(c.BodyText, issueURL)) {
			have = true
			break
		}
	}
	if !have {
		u := html.EscapeString(issueURL)
		body := fmt.Sprintf(`<div>%s Escalated to GitLab: <a href="%s" rel="noreferrer">%s</a></div>`, BridgePrefix, u, u)
		if _, err := b.cfg.Freshdesk.CreateNote(ctx, t.ID, Note{Body: body}); err != nil {
			return err
		}
	}
	if b.cfg.CustomField != "" {
		if v, _ := t.CustomFields[b.cfg.CustomField].(string); v != issueURL {
			_, err := b.cfg.Freshdesk.UpdateCustomFields(ctx, t.ID, map[string]any{b.cfg.CustomField: issueURL})
			var ae *APIError
			switch {
			case errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest && ae.Field == b.cfg.CustomField && ae.Code == "invalid_value":
				// Freshdesk refuses the value itself (a text field holds
				// 255 characters; a long project path makes a longer URL).
				// The link note carries the link and findIssue follows
				// it, so the escalation stands; the field stays empty.
				b.logger.LogAttrs(ctx, slog.LevelWarn, "custom field refused the issue URL; the link note carries it",
					slog.Int64("ticket", t.ID), slog.String("field", b.cfg.CustomField), slog.Int("url_length", len(issueURL)))
			case err != nil:
				return err
			}
		}
	}
	return nil
}

// keyedMutex serializes work per ticket.
type keyedMutex struct {
	mu sync.Mutex
	m  map[int64]*keyedEntry
}

type keyedEntry struct {
	ch   chan struct{}
	refs int
}

// lock waits for the ticket's turn, or for ctx to end.
func (k *keyedMutex) lock(ctx context.Context, id int64) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[int64]*keyedEntry{}
	}
	e := k.m[id]
	if e == nil {
		e = &keyedEntry{ch: make(chan struct{}, 1)}
		k.m[id] = e
	}
	e.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, id)
		}
		k.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
