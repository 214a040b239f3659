package freshdesktest_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
)

// TestReplyShape: POST /tickets/{id}/reply answers 201 with the fields of
// Freshdesk's "Reply to a ticket" example, and the reply is listed as an
// outgoing public conversation from the support address.
func TestReplyShape(t *testing.T) {
	s := freshdesktest.NewServer(t)
	tk := s.AddTicket(freshdesktest.Ticket{Subject: "x", Requester: freshdesktest.Contact{Email: "jane@customer.example"}})
	path := "/api/v2/tickets/" + jsonInt(tk.ID) + "/reply"

	st, _, b := call(t, s, http.MethodPost, path, s.APIKey(), "application/json", `{"body":"<div>Fixed.</div>"}`)
	require.Equal(t, http.StatusCreated, st, string(b))
	assert.Equal(t, []string{"attachments", "bcc_emails", "body", "body_text", "cc_emails", "created_at", "from_email",
		"id", "replied_to", "ticket_id", "updated_at", "user_id"}, keys(t, b))
	var r struct {
		BodyText  string   `json:"body_text"`
		UserID    int64    `json:"user_id"`
		RepliedTo []string `json:"replied_to"`
	}
	require.NoError(t, json.Unmarshal(b, &r))
	assert.Equal(t, "Fixed.", r.BodyText)
	assert.Equal(t, s.AgentID(), r.UserID)
	assert.Equal(t, []string{"jane@customer.example"}, r.RepliedTo)
	cs := s.Conversations(tk.ID)
	require.Len(t, cs, 1)
	assert.False(t, cs[0].Private)
	assert.False(t, cs[0].Incoming)
	assert.Equal(t, freshdesktest.SupportEmail, cs[0].FromEmail)

	st, _, b = call(t, s, http.MethodPost, path, s.APIKey(), "application/json", `{}`)
	assert.Equal(t, http.StatusBadRequest, st)
	assert.JSONEq(t, `{"description":"Validation failed","errors":[{"field":"body","message":"It should be a/an String","code":"missing_field"}]}`, string(b))
	st, _, _ = call(t, s, http.MethodPost, "/api/v2/tickets/1/reply", s.APIKey(), "application/json", `{"body":"x"}`)
	assert.Equal(t, http.StatusNotFound, st)
}

// TestUpdateStatus: PUT /tickets/{id} with "status" sets it; values other
// than Freshdesk's 2 to 5 answer 400 invalid_value and change nothing.
func TestUpdateStatus(t *testing.T) {
	s := freshdesktest.NewServer(t)
	tk := s.AddTicket(freshdesktest.Ticket{Subject: "x"})
	c := s.Client()
	got, err := c.UpdateStatus(t.Context(), tk.ID, freshdesk.StatusResolved)
	require.NoError(t, err)
	assert.Equal(t, freshdesk.StatusResolved, got.Status)
	now, _ := s.Ticket(tk.ID)
	assert.Equal(t, freshdesk.StatusResolved, now.Status)

	_, err = c.UpdateStatus(t.Context(), tk.ID, 9)
	var ae *freshdesk.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusBadRequest, ae.StatusCode)
	require.NotEmpty(t, ae.Errors)
	assert.Equal(t, "invalid_value", ae.Errors[0].Code)
	now, _ = s.Ticket(tk.ID)
	assert.Equal(t, freshdesk.StatusResolved, now.Status, "a refused update changes nothing")
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }
