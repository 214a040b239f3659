package freshdesk_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

func ExampleBridge_Escalate() {
	ctx := context.Background()
	fd := freshdesktest.New()
	defer fd.Close()
	gl := gitlabtest.New()
	defer gl.Close()
	gl.AddProject(gitlabtest.Project{ID: 7, Path: "acme/exporter"})

	tk := fd.AddTicket(freshdesktest.Ticket{Subject: "Nightly export fails", Description: "<p>Since 5.2 the export stops.</p>"})
	fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>Screenshot attached.</p>", Incoming: true,
		Attachments: []freshdesktest.Attachment{{Name: "dialog.png", ContentType: "image/png", Content: []byte("\x89PNG")}}})
	fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>Reproduced.</p>", Private: true, UserID: 101})

	b, err := freshdesk.NewBridge(freshdesk.BridgeConfig{
		Freshdesk: fd.Client(), GitLab: gl.Client(), Project: 7, FreshdeskURL: fd.URL(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	esc, err := b.Escalate(ctx, tk.ID)
	fmt.Println(esc.Created, esc.NotesAdded, esc.AttachmentsCopied, err)

	fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>Still failing.</p>", Incoming: true})
	esc, err = b.Escalate(ctx, tk.ID)
	fmt.Println(esc.Created, esc.NotesAdded, esc.AttachmentsCopied, err)
	fmt.Println(len(gl.Issues(7)), "issue")
	// Output:
	// true 2 1 <nil>
	// false 1 0 <nil>
	// 1 issue
}

func ExampleMarkdown() {
	fmt.Println(freshdesk.Markdown(`<p>Export stops with <b>HTTP 500</b> <script>alert(1)</script>@all</p><ul><li>since 5.2</li></ul>`))
	// Output:
	// Export stops with **HTTP 500** \@all
	//
	// - since 5\.2
}

func ExampleClient_Conversations() {
	fd := freshdesktest.New()
	defer fd.Close()
	tk := fd.AddTicket(freshdesktest.Ticket{Subject: "s"})
	for range 150 {
		fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>hi</p>"})
	}
	convs, err := fd.Client().Conversations(context.Background(), tk.ID)
	fmt.Println(len(convs), err)
	// Output: 150 <nil>
}

func ExampleBridge_Register() {
	ctx := context.Background()
	fd := freshdesktest.New()
	defer fd.Close()
	gl := gitlabtest.New()
	defer gl.Close()
	gl.AddProject(gitlabtest.Project{ID: 7, Path: "acme/exporter"})
	tk := fd.AddTicket(freshdesktest.Ticket{Subject: "Nightly export fails"})

	b, err := freshdesk.NewBridge(freshdesk.BridgeConfig{
		Freshdesk: fd.Client(), GitLab: gl.Client(), Project: 7, FreshdeskURL: fd.URL(),
		Sync: freshdesk.SyncConfig{CloseStatus: freshdesk.StatusResolved},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	hooks, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: "hook-token"})
	if err != nil {
		fmt.Println(err)
		return
	}
	b.Register(hooks)
	srv := httptest.NewServer(hooks) // in production: POST /gitlab/webhook of your server
	defer srv.Close()
	gl.AddHook(7, gitlabtest.Hook{URL: srv.URL, Options: gitlabtest.WebhookOptions{Token: "hook-token"}})

	esc, _ := b.Escalate(ctx, tk.ID)
	dev := gl.ClientFor(gitlabtest.DeveloperToken)
	dev.Notes.CreateIssueNote(7, esc.IssueIID, &gitlab.CreateIssueNoteOptions{Body: gitlab.Ptr("/customer Fixed in 5.2.1.")})
	dev.Issues.UpdateIssue(7, esc.IssueIID, &gitlab.UpdateIssueOptions{StateEvent: gitlab.Ptr("close")})
	_ = gl.WaitDeliveries(ctx)
	_ = hooks.Shutdown(ctx) // waits for the handlers

	t, _ := fd.Ticket(tk.ID)
	fmt.Println("status", t.Status)
	for _, c := range fd.Conversations(tk.ID) {
		fmt.Println(c.Private, htmlFirstLine(c.Body))
	}
	// Output:
	// status 4
	// true [gitlab-bridge] Escalated to GitLab
	// true [gitlab-bridge] Dev Eloper commented
	// true [gitlab-bridge] The GitLab issue
}

// htmlFirstLine shortens a note for the example's output.
func htmlFirstLine(s string) string {
	s = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(s, "")
	for _, cut := range []string{":", " on ", " #"} {
		if i := strings.Index(s, cut); i > 0 {
			s = s[:i]
		}
	}
	return s
}
