package freshdesk

import (
	"context"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/opskit/opskit/gitlabx"
)

// SyncConfig configures what a ticket hears back when its GitLab issue
// moves (see Bridge.Register). The zero value of each field selects the
// documented default.
type SyncConfig struct {
	// CloseTemplate is the html/template of the message the ticket gets
	// when its issue is closed; its data is a SyncData. "" means
	// DefaultCloseTemplate, or DefaultCloseReplyTemplate with CloseReply.
	CloseTemplate string
	// CloseReply sends the close message as a public reply to the
	// requester instead of a private note. The reply ends with a small
	// reference line ("[gitlab-bridge] ref gitlab-sync:...") by which the
	// bridge recognises it.
	CloseReply bool
	// CloseStatus, if not 0, is the status the ticket gets when its issue is
	// closed, e.g. StatusResolved.
	CloseStatus int
	// ReopenTemplate is the html/template of the private note the ticket
	// gets when its issue is reopened. "" means DefaultReopenTemplate.
	ReopenTemplate string
	// ReopenStatus is the status the ticket gets back when its issue is
	// reopened. 0 means StatusOpen; -1 leaves the status alone.
	ReopenStatus int
	// NotePrefix marks the GitLab comments that are copied to the ticket as
	// private notes: a comment whose text starts with it, followed by a
	// space or a line break (e.g. "/customer The fix ships in 5.2.1"), is
	// copied without the prefix. Internal
	// comments and the bridge's own notes are never copied. "" means
	// DefaultNotePrefix.
	NotePrefix string
}

// The defaults of SyncConfig.
const (
	DefaultCloseTemplate      = `The GitLab issue <a href="{{.IssueURL}}">#{{.IssueIID}} {{.Title}}</a> was closed by {{.User}}.`
	DefaultCloseReplyTemplate = `The problem you reported has been fixed. Thank you for your patience.`
	DefaultReopenTemplate     = `The GitLab issue <a href="{{.IssueURL}}">#{{.IssueIID}} {{.Title}}</a> was reopened by {{.User}}.`
	DefaultNotePrefix         = "/customer"
)

// SyncData is what the sync templates are executed with. html/template
// escapes every field for its place in the HTML.
type SyncData struct {
	TicketID int64
	IssueIID int64
	IssueURL string
	Title    string
	User     string // the name of who closed or reopened the issue
}

// SyncRefPrefix starts the reference that the bridge writes into every
// note or reply it leaves on a ticket for a GitLab event
// ("gitlab-sync:close-1-20260302T101500Z"). Before it writes, the bridge
// looks for its own conversation carrying the reference, so a redelivered
// event changes nothing.
const SyncRefPrefix = "gitlab-sync:"

type syncTemplates struct {
	close, reopen *template.Template
}

func parseSyncTemplates(c SyncConfig) (syncTemplates, error) {
	var t syncTemplates
	closeSrc := c.CloseTemplate
	if closeSrc == "" {
		closeSrc = DefaultCloseTemplate
		if c.CloseReply {
			closeSrc = DefaultCloseReplyTemplate
		}
	}
	reopenSrc := c.ReopenTemplate
	if reopenSrc == "" {
		reopenSrc = DefaultReopenTemplate
	}
	var err error
	if t.close, err = template.New("close").Parse(closeSrc); err != nil {
		return t, fmt.Errorf("%w: CloseTemplate: %v", ErrConfig, err)
	}
	if t.reopen, err = template.New("reopen").Parse(reopenSrc); err != nil {
		return t, fmt.Errorf("%w: ReopenTemplate: %v", ErrConfig, err)
	}
	// A field that SyncData lacks fails only when executed: find it now.
	if err := t.close.Execute(io.Discard, SyncData{}); err != nil {
		return t, fmt.Errorf("%w: CloseTemplate: %v", ErrConfig, err)
	}
	if err := t.reopen.Execute(io.Discard, SyncData{}); err != nil {
		return t, fmt.Errorf("%w: ReopenTemplate: %v", ErrConfig, err)
	}
	return t, nil
}

// Register makes h deliver the events of escalated issues to the bridge:
// issue events (close, reopen) to HandleIssue and note events to
// HandleNote. Register before h serves.
func (b *Bridge) Register(h *gitlabx.Hooks) {
	h.OnIssue(b.HandleIssue)
	h.OnNote(b.HandleNote)
}

// HandleIssue tells the ticket of an escalated issue that the issue was
// closed (the close message, as a private note or a public reply, and the
// optional CloseStatus) or reopened (a private note and ReopenStatus).
// Events of other projects, of issues the bridge did not escalate (a
// ticket marker counts only in an issue the bridge's own user wrote, or in
// the issue the ticket's custom field names) and other actions are ignored
// and return nil. An event that no longer matches the issue's state (a
// late close of an issue reopened since) is ignored too. Each action is
// done once: a redelivered event finds the reference the first one left.
func (b *Bridge) HandleIssue(ctx context.Context, ev *gitlab.IssueEvent) error {
	a := ev.ObjectAttributes
	var kind string
	switch a.Action {
	case "close":
		kind = SyncClose
	case "reopen":
		kind = SyncReopen
	default:
		return nil
	}
	ctx, span := b.startSpan(ctx, "freshdesk.SyncIssue", attribute.String("opskit.sync_kind", kind), attribute.Int64("gitlab.issue_iid", a.IID))
	result, err := b.syncIssue(ctx, ev)
	if err != nil {
		result = SyncError
	}
	b.cfg.Metrics.synced(kind, result)
	endSpan(span, result, err)
	return err
}

// syncIssue is HandleIssue; it returns the result for the metrics.
func (b *Bridge) syncIssue(ctx context.Context, ev *gitlab.IssueEvent) (string, error) {
	a := ev.ObjectAttributes
	var want string
	switch a.Action {
	case "close":
		want = "closed"
	case "reopen":
		want = "opened"
	}
	if !b.ownProject(ev.Project.ID, ev.Project.PathWithNamespace) {
		return SyncIgnored, nil
	}
	ticketID, _, err := b.escalatedTicket(ctx, a.IID)
	if err != nil || ticketID == 0 {
		return SyncIgnored, err
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.Int64("freshdesk.ticket_id", ticketID))
	unlock, err := b.locks.lock(ctx, ticketID)
	if err != nil {
		return "", fmt.Errorf("freshdesk: sync issue %d: %w", a.IID, err)
	}
	defer unlock()
	is, _, err := b.cfg.GitLab.Issues.GetIssue(b.proj, a.IID, gitlabx.RequestOptions(ctx)...)
	if err != nil {
		return "", fmt.Errorf("freshdesk: sync issue %d: %w", a.IID, err)
	}
	if is.State != want {
		return SyncIgnored, nil
	}
	user := "someone"
	if ev.User != nil && ev.User.Name != "" {
		user = ev.User.Name
	}
	data := SyncData{TicketID: ticketID, IssueIID: is.IID, IssueURL: is.WebURL, Title: is.Title, User: user}
	ref := SyncRefPrefix + a.Action + "-" + strconv.FormatInt(is.IID, 10) + "-" + refPart(a.UpdatedAt)
	log := b.logger.With(slog.Int64("ticket", ticketID), slog.Int64("iid", is.IID), slog.String("action", a.Action))

	done, err := b.hasSyncRef(ctx, ticketID, ref)
	if err != nil {
		return "", err
	}
	if done {
		return SyncDuplicate, nil
	}
	tmpl, status, reply := b.tmpl.reopen, b.cfg.Sync.ReopenStatus, false
	if a.Action == "close" {
		tmpl, status, reply = b.tmpl.close, b.cfg.Sync.CloseStatus, b.cfg.Sync.CloseReply
	} else if status == 0 {
		status = StatusOpen
	}
	var msg strings.Builder
	if err := tmpl.Execute(&msg, data); err != nil {
		return "", fmt.Errorf("freshdesk: sync issue %d: template: %w", is.IID, err)
	}
	// The status first: the note or reply marks the action as done, so a
	// failure in between is completed by the next delivery.
	if status > 0 {
		if _, err := b.cfg.Freshdesk.UpdateStatus(ctx, ticketID, status); err != nil {
			return "", fmt.Errorf("freshdesk: sync issue %d: ticket %d status: %w", is.IID, ticketID, err)
		}
	}
	if reply {
		body := msg.String() + `<div><small>` + BridgePrefix + ` ref ` + ref + `</small></div>`
		_, err = b.cfg.Freshdesk.Reply(ctx, ticketID, body)
	} else {
		body := `<div>` + BridgePrefix + ` ` + msg.String() + `</div><div>ref ` + ref + `</div>`
		_, err = b.cfg.Freshdesk.CreateNote(ctx, ticketID, Note{Body: body})
	}
	if err != nil {
		return "", fmt.Errorf("freshdesk: sync issue %d: ticket %d: %w", is.IID, ticketID, err)
	}
	log.LogAttrs(ctx, slog.LevelInfo, "ticket told", slog.Bool("reply", reply), slog.Int("status", status))
	return SyncSynced, nil
}

// HandleNote copies a GitLab comment on an escalated issue to the ticket as
// a private note when its text starts with NotePrefix. Comments by the
// bridge's own user, system notes, internal comments and comments on other
// issues, merge requests or projects are ignored and return nil. The
// comment is read again from GitLab before it is copied, and copied once: a
// redelivered event finds the reference the first copy left.
func (b *Bridge) HandleNote(ctx context.Context, ev gitlabx.NoteEvent) error {
	if ev.Issue == nil {
		return nil
	}
	ctx, span := b.startSpan(ctx, "freshdesk.SyncNote", attribute.String("opskit.sync_kind", SyncNote),
		attribute.Int64("gitlab.issue_iid", ev.Issue.Issue.IID), attribute.Int64("gitlab.note_id", ev.Issue.ObjectAttributes.ID))
	result, err := b.syncNote(ctx, ev)
	if err != nil {
		result = SyncError
	}
	b.cfg.Metrics.synced(SyncNote, result)
	endSpan(span, result, err)
	return err
}

// syncNote is HandleNote for a comment on an issue; it returns the result
// for the metrics.
func (b *Bridge) syncNote(ctx context.Context, ev gitlabx.NoteEvent) (string, error) {
	e := ev.Issue
	a := e.ObjectAttributes
	if _, ok := b.cutNotePrefix(a.Note); a.System || !ok ||
		!b.ownProject(e.ProjectID, e.Project.PathWithNamespace) {
		return SyncIgnored, nil
	}
	self, err := b.self(ctx)
	if err != nil {
		return "", fmt.Errorf("freshdesk: sync note %d: %w", a.ID, err)
	}
	if a.AuthorID == self {
		return SyncIgnored, nil
	}
	ticketID, issue, err := b.escalatedTicket(ctx, e.Issue.IID)
	if err != nil || ticketID == 0 {
		return SyncIgnored, err
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.Int64("freshdesk.ticket_id", ticketID))
	unlock, err := b.locks.lock(ctx, ticketID)
	if err != nil {
		return "", fmt.Errorf("freshdesk: sync note %d: %w", a.ID, err)
	}
	defer unlock()
	n, _, err := b.cfg.GitLab.Notes.GetIssueNote(b.proj, e.Issue.IID, a.ID, gitlabx.RequestOptions(ctx)...)
	if errors.Is(err, gitlab.ErrNotFound) {
		return SyncIgnored, nil // deleted since
	}
	if err != nil {
		return "", fmt.Errorf("freshdesk: sync note %d: %w", a.ID, err)
	}
	text, ok := b.cutNotePrefix(n.Body)
	if !ok || n.System || n.Internal || n.Author.ID == self {
		return SyncIgnored, nil
	}
	ref := SyncRefPrefix + "note-" + strconv.FormatInt(n.ID, 10)
	done, err := b.hasSyncRef(ctx, ticketID, ref)
	if err != nil {
		return "", err
	}
	if done {
		return SyncDuplicate, nil
	}
	who := n.Author.Name
	if who == "" {
		who = n.Author.Username
	}
	issueURL := issue.WebURL
	var body strings.Builder
	fmt.Fprintf(&body, `<div>%s %s commented on <a href="%s">GitLab issue #%d</a>:</div>`,
		BridgePrefix, html.EscapeString(who), html.EscapeString(issueURL), e.Issue.IID)
	body.WriteString(`<div>` + strings.ReplaceAll(html.EscapeString(text), "\n", "<br>") + `</div>`)
	body.WriteString(`<div>ref ` + ref + `</div>`)
	if _, err := b.cfg.Freshdesk.CreateNote(ctx, ticketID, Note{Body: body.String()}); err != nil {
		return "", fmt.Errorf("freshdesk: sync note %d: ticket %d: %w", n.ID, ticketID, err)
	}
	b.logger.LogAttrs(ctx, slog.LevelInfo, "comment copied to ticket", slog.Int64("ticket", ticketID), slog.Int64("note", n.ID))
	return SyncSynced, nil
}

// cutNotePrefix returns the text of a comment marked for the ticket, after
// NotePrefix and the space or line break that must follow it.
func (b *Bridge) cutNotePrefix(body string) (string, bool) {
	prefix := b.cfg.Sync.NotePrefix
	if prefix == "" {
		prefix = DefaultNotePrefix
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(body), prefix)
	if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t' && rest[0] != '\n' && rest[0] != '\r') {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	return rest, rest != ""
}

// ownProject reports whether an event's project is the bridge's.
func (b *Bridge) ownProject(id int64, path string) bool {
	switch p := b.cfg.Project.(type) {
	case int:
		return id == int64(p)
	case int64:
		return id == p
	case string:
		return strings.EqualFold(path, p) || strconv.FormatInt(id, 10) == p
	}
	return false
}

// escalatedTicket returns the ticket an issue was escalated from, or 0. The
// issue is read from GitLab (not from the event): its description's first
// line must be a ticket marker, and either the bridge's own user wrote the
// issue or the ticket's custom field names it. A marker someone else
// planted names no ticket.
func (b *Bridge) escalatedTicket(ctx context.Context, iid int64) (int64, *gitlab.Issue, error) {
	id, is, err := b.escalatedTicket1(ctx, iid)
	if id == 0 {
		is = nil
	}
	return id, is, err
}

func (b *Bridge) escalatedTicket1(ctx context.Context, iid int64) (int64, *gitlab.Issue, error) {
	self, err := b.self(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("freshdesk: sync issue %d: %w", iid, err)
	}
	is, _, err := b.cfg.GitLab.Issues.GetIssue(b.proj, iid, gitlabx.RequestOptions(ctx)...)
	if errors.Is(err, gitlab.ErrNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("freshdesk: sync issue %d: %w", iid, err)
	}
	m := ticketMarkerRE.FindStringSubmatch(firstLine(is.Description))
	if m == nil {
		return 0, nil, nil
	}
	id, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, nil, nil
	}
	if is.Author != nil && is.Author.ID == self {
		return id, is, nil
	}
	if b.cfg.CustomField == "" {
		return 0, nil, nil
	}
	t, err := b.cfg.Freshdesk.Ticket(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("freshdesk: sync issue %d: ticket %d: %w", iid, id, err)
	}
	if v, _ := t.CustomFields[b.cfg.CustomField].(string); v != "" && v == is.WebURL {
		return id, is, nil
	}
	return 0, nil, nil
}

var ticketMarkerRE = regexp.MustCompile(`^<!-- opskit:freshdesk-ticket=([0-9]+) -->$`)

// hasSyncRef reports whether the bridge already left a conversation with
// ref on the ticket. Only the bridge's own conversations count: a customer
// could write the reference into an e-mail.
func (b *Bridge) hasSyncRef(ctx context.Context, ticketID int64, ref string) (bool, error) {
	convs, err := b.cfg.Freshdesk.Conversations(ctx, ticketID)
	if err != nil {
		return false, fmt.Errorf("freshdesk: sync ticket %d: %w", ticketID, err)
	}
	for _, c := range convs {
		if b.isOwnNote(c) && hasRef(c, ref) {
			return true, nil
		}
	}
	return false, nil
}

// hasRef reports whether a conversation carries ref as a whole word.
func hasRef(c Conversation, ref string) bool {
	for _, s := range []string{c.BodyText, htmlText(c.Body)} {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\n' || r == '<' || r == '>' || r == '\u00a0' }) {
			if f == ref {
				return true
			}
		}
	}
	return false
}

// refPart keeps the letters and digits of s, for a reference word.
func refPart(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return -1
	}, s)
}
