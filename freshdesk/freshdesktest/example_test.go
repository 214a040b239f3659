package freshdesktest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
)

func Example() {
	srv := freshdesktest.New()
	defer srv.Close()
	tk := srv.AddTicket(freshdesktest.Ticket{Subject: "Export fails"})
	c := srv.Client()

	_, err := c.CreateNote(context.Background(), tk.ID, freshdesk.Note{Body: "<p>Looking into it</p>"})
	fmt.Println(err, len(srv.Conversations(tk.ID)), srv.Conversations(tk.ID)[0].Private)

	_, err = c.Ticket(context.Background(), 1)
	fmt.Println(errors.Is(err, freshdesk.ErrNotFound))
	// Output:
	// <nil> 1 true
	// true
}
