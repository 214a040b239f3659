package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// freshdeskChapter is the tour's freshdesk chapter.
func freshdeskChapter() chapter {
	return chapter{
		name:    "freshdesk",
		summary: "escalate a help-desk ticket to a GitLab issue, twice, without duplicates",
		run:     runFreshdesk,
	}
}

func runFreshdesk(ctx context.Context, n *narrator) error {
	fd := freshdesktest.New()
	defer fd.Close()
	gl := gitlabtest.New()
	defer gl.Close()
	gl.AddProject(gitlabtest.Project{ID: 7, Path: "acme/exporter"})

	tk := fd.AddTicket(freshdesktest.Ticket{
		Subject:     "Nightly export fails with HTTP 500 after upgrade to 5.2",
		Description: `<div>Since the upgrade to 5.2 the nightly export stops with <b>HTTP 500</b>.<script>alert(1)</script></div>`,
		Requester:   freshdesktest.Contact{Name: "Jane Doe", Email: "jane.doe@customer.example"},
	})
	fd.AddAgent(freshdesktest.Agent{ID: 101, Name: "Sam Support", Email: "sam@acme.example"})
	at := time.Date(2026, 3, 2, 8, 40, 0, 0, time.UTC) // fixed times keep the narration deterministic
	fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>Here is a screenshot of the error dialog.</div>", Incoming: true, CreatedAt: at,
		UserID: tk.Requester.ID, Attachments: []freshdesktest.Attachment{{Name: "error-dialog.png", ContentType: "image/png", Content: []byte("\x89PNG fake image")}}})
	fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>Reproduced on staging: rows with NULL region.</div>", Private: true, UserID: 101, Source: 2, CreatedAt: at.Add(time.Hour)})
	fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>Thanks Jane, we escalated it to our engineers.</div>", UserID: 101, CreatedAt: at.Add(2 * time.Hour)})
	n.Say("Freshdesk ticket %d: %q, with 3 conversations (one a private note) and 1 attachment.", tk.ID, tk.Subject)

	b, err := freshdesk.NewBridge(freshdesk.BridgeConfig{
		Freshdesk: fd.Client(), GitLab: gl.Client(), Project: 7,
		FreshdeskURL: "https://acme.freshdesk.com", AgentID: fd.AgentID(),
	})
	if err != nil {
		return err
	}
	esc, err := b.Escalate(ctx, tk.ID)
	if err != nil {
		return err
	}
	n.Say("Escalate: created=%t, notes added %d, attachments copied %d, issue %s.", esc.Created, esc.NotesAdded, esc.AttachmentsCopied, strings.TrimPrefix(esc.IssueURL, gl.URL()+"/"))
	issues := gl.Issues(7)
	if len(issues) != 1 {
		return fmt.Errorf("want 1 issue, have %d", len(issues))
	}
	desc := strings.Split(issues[0].Description, "\n")
	n.Say("The issue's description starts with the hidden marker %s;", desc[0])
	n.Say("the ticket's HTML arrives as inert Markdown (the script is gone): %q", desc[len(desc)-1])
	notes := gl.Notes(7, gitlabtest.IssueNoteable, issues[0].IID)
	internal := 0
	for _, nt := range notes {
		if nt.Internal {
			internal++
		}
	}
	n.Say("GitLab issue #%d has %d notes, %d of them internal (the private Freshdesk note); the second reads:", issues[0].IID, len(notes), internal)
	for _, l := range strings.Split(notes[1].Body, "\n")[1:] {
		if l != "" {
			n.Say("    %s", l)
		}
	}
	n.Say("A private link-back note is on the ticket: %t.", linkNotes(fd, tk.ID) == 1)

	fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>It failed again tonight.</div>", Incoming: true, UserID: tk.Requester.ID, CreatedAt: at.Add(14 * time.Hour)})
	n.Say("Jane replies on the ticket; support presses the button again.")
	esc, err = b.Escalate(ctx, tk.ID)
	if err != nil {
		return err
	}
	n.Say("Escalate: created=%t, notes added %d, attachments copied %d.", esc.Created, esc.NotesAdded, esc.AttachmentsCopied)
	notes = gl.Notes(7, gitlabtest.IssueNoteable, issues[0].IID)
	if len(gl.Issues(7)) != 1 || len(notes) != 4 || esc.NotesAdded != 1 || linkNotes(fd, tk.ID) != 1 {
		return fmt.Errorf("after the second escalation: %d issues, %d notes, %d added, %d link notes; want 1, 4, 1, 1",
			len(gl.Issues(7)), len(notes), esc.NotesAdded, linkNotes(fd, tk.ID))
	}
	n.Say("Still one issue, now %d notes: only the reply was added, and the link note was neither copied nor repeated.", len(notes))
	return nil
}

func linkNotes(fd *freshdesktest.Server, ticket int64) int {
	c := 0
	for _, cv := range fd.Conversations(ticket) {
		if strings.Contains(cv.Body, freshdesk.BridgePrefix) {
			c++
		}
	}
	return c
}
