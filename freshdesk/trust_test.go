package freshdesk_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// TestHardening02PlantedIssueNotAdopted: any project member can open an
// issue whose description starts with the marker of the next ticket. The
// bridge must not adopt it (posting the agents' private notes into it and
// pinning the custom field to it); it creates its own issue instead.
func TestHardening02PlantedIssueNotAdopted(t *testing.T) {
	e := newEnv(t, envOpt{})
	dev := e.gl.ClientFor(gitlabtest.DeveloperToken)
	planted, _, err := dev.Issues.CreateIssue(project, &gitlab.CreateIssueOptions{
		Title:       gitlab.Ptr("totally the escalation"),
		Description: gitlab.Ptr(freshdesk.TicketMarker(e.ticket) + "\nplanted"),
	})
	require.NoError(t, err)

	esc, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.True(t, esc.Created, "a new issue, not the planted one")
	assert.NotEqual(t, planted.IID, esc.IssueIID)
	assert.Empty(t, e.gl.Notes(project, gitlabtest.IssueNoteable, planted.IID), "no private note is posted into the planted issue")
	own, ok := e.gl.Issue(project, esc.IssueIID)
	require.True(t, ok)
	assert.Equal(t, e.gl.BotUser().ID, own.AuthorID)
	tk, _ := e.fd.Ticket(e.ticket)
	assert.Equal(t, esc.IssueURL, tk.CustomFields["cf_gitlab_issue"], "the custom field names the bridge's issue")

	// Escalating again finds the bridge's issue, still not the planted one.
	again, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.Equal(t, esc.IssueIID, again.IssueIID)
	assert.False(t, again.Created)
}

// TestHardening02PlantedIssueNotAdoptedWithoutCustomField: without the
// custom field the bridge finds its issue by the marker alone, and still
// only in an issue its own user wrote.
func TestHardening02PlantedIssueNotAdoptedWithoutCustomField(t *testing.T) {
	e := newEnv(t, envOpt{bridge: func(c *freshdesk.BridgeConfig) { c.CustomField = "" }})
	dev := e.gl.ClientFor(gitlabtest.DeveloperToken)
	planted, _, err := dev.Issues.CreateIssue(project, &gitlab.CreateIssueOptions{
		Title: gitlab.Ptr("x"), Description: gitlab.Ptr(freshdesk.TicketMarker(e.ticket)),
	})
	require.NoError(t, err)
	first, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.True(t, first.Created)
	assert.NotEqual(t, planted.IID, first.IssueIID)
	second, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.False(t, second.Created, "the bridge's own issue is found again by its marker")
	assert.Equal(t, first.IssueIID, second.IssueIID)
	assert.Empty(t, e.gl.Notes(project, gitlabtest.IssueNoteable, planted.IID))
}

// TestHardening02PlantedNoteMarkerIgnored: a note with a conversation
// marker written by someone else must not stop the bridge from copying
// that conversation.
func TestHardening02PlantedNoteMarkerIgnored(t *testing.T) {
	e := newEnv(t, envOpt{})
	esc, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	c := e.fd.AddConversation(e.ticket, freshdesktest.Conversation{Body: "<p>The secret workaround is X.</p>", Private: true, UserID: 48000000101, Source: 2})
	dev := e.gl.ClientFor(gitlabtest.DeveloperToken)
	_, _, err = dev.Notes.CreateIssueNote(project, esc.IssueIID, &gitlab.CreateIssueNoteOptions{
		Body: gitlab.Ptr(freshdesk.ConversationMarker(c.ID) + "\nnothing to see"),
	})
	require.NoError(t, err)

	again, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.Equal(t, 1, again.NotesAdded, "the conversation is copied despite the planted marker")
	var copies int
	for _, n := range e.gl.Notes(project, gitlabtest.IssueNoteable, esc.IssueIID) {
		if strings.HasPrefix(n.Body, freshdesk.ConversationMarker(c.ID)) && n.AuthorID == e.gl.BotUser().ID {
			copies++
			assert.Contains(t, n.Body, "secret workaround")
		}
	}
	assert.Equal(t, 1, copies, fmt.Sprintf("one copy of conversation %d by the bridge", c.ID))
}
