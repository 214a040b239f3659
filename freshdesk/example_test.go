package freshdesk_test

import (
	"context"
	"fmt"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
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
