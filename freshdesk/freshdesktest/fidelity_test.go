package freshdesktest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a settable clock for WithClock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func header(t *testing.T, h http.Header, name string) int {
	t.Helper()
	n, err := strconv.Atoi(h.Get(name))
	require.NoError(t, err, "header %s = %q", name, h.Get(name))
	return n
}

func TestIncludeConversationsCostsTwoCredits(t *testing.T) {
	s, tk := scenario(t)
	path := "/api/v2/tickets/" + strconv.FormatInt(tk.ID, 10)
	tests := []struct {
		query string
		cost  int
	}{
		{"", 1},
		{"?include=requester", 1},
		{"?include=conversations", 2},
		{"?include=requester,conversations", 2},
	}
	_, h, _ := call(t, s, "GET", path, s.APIKey(), "", "")
	before := header(t, h, "X-RateLimit-Remaining")
	for _, tt := range tests {
		st, h, _ := call(t, s, "GET", path+tt.query, s.APIKey(), "", "")
		require.Equal(t, 200, st, "GET %s", tt.query)
		assert.Equal(t, tt.cost, header(t, h, "X-RateLimit-Used-CurrentRequest"), "credits of GET ticket%s", tt.query)
		rem := header(t, h, "X-RateLimit-Remaining")
		assert.Equal(t, before-tt.cost, rem, "X-RateLimit-Remaining after GET ticket%s", tt.query)
		before = rem
	}
	assert.Equal(t, 700, header(t, h, "X-RateLimit-Total"), "default per-minute limit")
}

func TestRateLimitWindowResets(t *testing.T) {
	clk := newClock()
	s, tk := scenario(t, freshdesktest.WithClock(clk.Now), freshdesktest.WithRateLimit(4))
	path := "/api/v2/tickets/" + strconv.FormatInt(tk.ID, 10)

	_, h, _ := call(t, s, "GET", path, s.APIKey(), "", "")
	assert.Equal(t, 4, header(t, h, "X-RateLimit-Total"))
	assert.Equal(t, 3, header(t, h, "X-RateLimit-Remaining"))
	clk.Add(20 * time.Second)
	st, _, _ := call(t, s, "GET", "/api/v2/tickets/1", s.APIKey(), "", "")
	require.Equal(t, 404, st, "an invalid request counts as well")
	st, h, _ = call(t, s, "GET", path+"?include=conversations", s.APIKey(), "", "")
	require.Equal(t, 200, st)
	assert.Equal(t, 0, header(t, h, "X-RateLimit-Remaining"))

	st, h, _ = call(t, s, "GET", path, s.APIKey(), "", "")
	require.Equal(t, http.StatusTooManyRequests, st, "credits exhausted")
	assert.Equal(t, "40", h.Get("Retry-After"), "seconds until the minute that began with the first call ends")
	assert.Equal(t, 0, header(t, h, "X-RateLimit-Remaining"))
	assert.Equal(t, 4, header(t, h, "X-RateLimit-Total"))
	assert.NotEmpty(t, h.Get("X-RateLimit-Used-CurrentRequest"))

	clk.Add(39 * time.Second)
	st, h, _ = call(t, s, "GET", path, s.APIKey(), "", "")
	require.Equal(t, http.StatusTooManyRequests, st, "still in the same minute")
	assert.Equal(t, "1", h.Get("Retry-After"))

	clk.Add(time.Second)
	st, h, _ = call(t, s, "GET", path, s.APIKey(), "", "")
	require.Equal(t, 200, st, "a new minute")
	assert.Equal(t, 3, header(t, h, "X-RateLimit-Remaining"))
}

func TestRateLimitTwoCreditsNeedTwo(t *testing.T) {
	s, tk := scenario(t, freshdesktest.WithRateLimit(2))
	path := "/api/v2/tickets/" + strconv.FormatInt(tk.ID, 10)
	st, _, _ := call(t, s, "GET", path, s.APIKey(), "", "")
	require.Equal(t, 200, st)
	st, h, _ := call(t, s, "GET", path+"?include=conversations", s.APIKey(), "", "")
	assert.Equal(t, http.StatusTooManyRequests, st, "one credit left, two needed")
	assert.NotEmpty(t, h.Get("Retry-After"))
	st, _, _ = call(t, s, "GET", path, s.APIKey(), "", "")
	assert.Equal(t, 200, st, "the refused call spent nothing")
}

func TestRateLimitOff(t *testing.T) {
	s, tk := scenario(t, freshdesktest.WithRateLimit(-1))
	path := "/api/v2/tickets/" + strconv.FormatInt(tk.ID, 10)
	for i := range 5 {
		st, _, _ := call(t, s, "GET", path+"?include=conversations", s.APIKey(), "", "")
		require.Equal(t, 200, st, "call %d without a limit", i)
	}
}

// TestClientWaitsOutWindow checks that the SDK, driven into the fake's
// limit, waits for Retry-After and then succeeds.
func TestClientWaitsOutWindow(t *testing.T) {
	clk := newClock()
	s, tk := scenario(t, freshdesktest.WithClock(clk.Now), freshdesktest.WithRateLimit(2))
	var waited []time.Duration
	cfg := s.Config()
	cfg.Wait = func(_ context.Context, d time.Duration) error {
		waited = append(waited, d)
		clk.Add(d)
		return nil
	}
	c, err := freshdesk.New(cfg)
	require.NoError(t, err)
	for i := range 3 {
		_, err := c.Ticket(t.Context(), tk.ID)
		require.NoError(t, err, "Ticket call %d", i)
	}
	assert.Equal(t, []time.Duration{time.Minute}, waited, "the client waited out the window once")
}

func validationErrors(t *testing.T, b []byte) []freshdesk.FieldError {
	t.Helper()
	var body struct {
		Description string                 `json:"description"`
		Errors      []freshdesk.FieldError `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(b, &body), string(b))
	assert.Equal(t, "Validation failed", body.Description)
	return body.Errors
}

func TestCreateNoteValidation(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		field string
		code  string
	}{
		{"notify_emails not an array", `{"body":"x","notify_emails":"a@b.example"}`, "notify_emails", "datatype_mismatch"},
		{"notify_emails not strings", `{"body":"x","notify_emails":[1]}`, "notify_emails", "datatype_mismatch"},
		{"notify_emails not addresses", `{"body":"x","notify_emails":["ops"]}`, "notify_emails", "invalid_value"},
		{"incoming not boolean", `{"body":"x","incoming":"true"}`, "incoming", "datatype_mismatch"},
		{"private not boolean", `{"body":"x","private":1}`, "private", "datatype_mismatch"},
		{"user_id a string", `{"body":"x","user_id":"48000000001"}`, "user_id", "datatype_mismatch"},
		{"user_id not positive", `{"body":"x","user_id":-3}`, "user_id", "datatype_mismatch"},
		{"user_id unknown", `{"body":"x","user_id":123}`, "user_id", "invalid_value"},
		{"body not a string", `{"body":5}`, "body", "datatype_mismatch"},
		{"unknown field", `{"body":"x","status":2}`, "status", "invalid_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, tk := scenario(t)
			n := len(s.Conversations(tk.ID))
			st, _, b := call(t, s, "POST", "/api/v2/tickets/4711/notes", s.APIKey(), "application/json", tt.body)
			require.Equal(t, 400, st, "POST notes %s: %s", tt.body, b)
			errs := validationErrors(t, b)
			require.Len(t, errs, 1, "%s", b)
			assert.Equal(t, tt.field, errs[0].Field)
			assert.Equal(t, tt.code, errs[0].Code)
			assert.NotEmpty(t, errs[0].Message)
			assert.Len(t, s.Conversations(tk.ID), n, "a refused note is not stored")
		})
	}

	t.Run("valid", func(t *testing.T) {
		s, tk := scenario(t)
		s.AddAgent(freshdesktest.Agent{ID: 48000000101, Name: "Ann", Email: "ann@acme.example"})
		for _, uid := range []int64{48000000001, 48000000101, s.AgentID()} { // requester, agent, API user
			st, _, b := call(t, s, "POST", "/api/v2/tickets/4711/notes", s.APIKey(), "application/json",
				`{"body":"x","incoming":true,"private":false,"user_id":`+strconv.FormatInt(uid, 10)+`,"notify_emails":["ann@acme.example"]}`)
			require.Equal(t, http.StatusCreated, st, "%s", b)
			cs := s.Conversations(tk.ID)
			last := cs[len(cs)-1]
			assert.True(t, last.Incoming, "incoming stored")
			assert.Equal(t, uid, last.UserID, "user_id stored")
			var m map[string]any
			require.NoError(t, json.Unmarshal(b, &m))
			assert.Equal(t, true, m["incoming"])
			assert.Equal(t, []any{"ann@acme.example"}, m["notified_to"])
		}
	})
}

func TestCreateNoteMultipartValidation(t *testing.T) {
	tests := []struct {
		name   string
		fields [][2]string
		field  string
		code   string
	}{
		{"incoming", [][2]string{{"incoming", "yes"}}, "incoming", "datatype_mismatch"},
		{"private", [][2]string{{"private", "no"}}, "private", "datatype_mismatch"},
		{"user_id", [][2]string{{"user_id", "abc"}}, "user_id", "datatype_mismatch"},
		{"user_id unknown", [][2]string{{"user_id", "7"}}, "user_id", "invalid_value"},
		{"notify_emails", [][2]string{{"notify_emails[]", "nobody"}}, "notify_emails", "invalid_value"},
		{"unknown", [][2]string{{"cc_emails[]", "a@b.example"}}, "cc_emails", "invalid_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := scenario(t)
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			require.NoError(t, mw.WriteField("body", "x"))
			for _, f := range tt.fields {
				require.NoError(t, mw.WriteField(f[0], f[1]))
			}
			require.NoError(t, mw.Close())
			st, _, b := call(t, s, "POST", "/api/v2/tickets/4711/notes", s.APIKey(), mw.FormDataContentType(), buf.String())
			require.Equal(t, 400, st, "%s", b)
			errs := validationErrors(t, b)
			require.Len(t, errs, 1, "%s", b)
			assert.Equal(t, tt.field, errs[0].Field)
			assert.Equal(t, tt.code, errs[0].Code)
		})
	}
}

func TestCustomFieldTypes(t *testing.T) {
	long := string(bytes.Repeat([]byte("a"), 256))
	tests := []struct {
		name  string
		value string // JSON
		code  string // "" means accepted
	}{
		{"text", `"5.3.0"`, ""},
		{"text", `null`, ""},
		{"text", `5`, "datatype_mismatch"},
		{"text", `"` + long + `"`, "invalid_value"},
		{"paragraph", `"` + long + `"`, ""},
		{"paragraph", `true`, "datatype_mismatch"},
		{"checkbox", `true`, ""},
		{"checkbox", `"true"`, "datatype_mismatch"},
		{"number", `42`, ""},
		{"number", `4.5`, "datatype_mismatch"},
		{"number", `"42"`, "datatype_mismatch"},
		{"decimal", `4.5`, ""},
		{"decimal", `"4.5"`, "datatype_mismatch"},
		{"date", `"2026-03-02"`, ""},
		{"date", `"02.03.2026"`, "invalid_value"},
		{"dropdown", `"Bug"`, ""},
		{"dropdown", `"Feature"`, "invalid_value"},
		{"inferred_text", `7`, "datatype_mismatch"},
		{"inferred_checkbox", `"x"`, "datatype_mismatch"},
		{"inferred_number", `3`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+tt.value[:min(len(tt.value), 12)], func(t *testing.T) {
			s := freshdesktest.NewServer(t)
			for _, f := range []freshdesktest.TicketField{
				{Name: "cf_text", Type: freshdesktest.FieldText},
				{Name: "cf_paragraph", Type: freshdesktest.FieldParagraph},
				{Name: "cf_checkbox", Type: freshdesktest.FieldCheckbox},
				{Name: "cf_number", Type: freshdesktest.FieldNumber},
				{Name: "cf_decimal", Type: freshdesktest.FieldDecimal},
				{Name: "cf_date", Type: freshdesktest.FieldDate},
				{Name: "cf_dropdown", Type: freshdesktest.FieldDropdown, Choices: []string{"Bug", "Question"}},
			} {
				s.AddTicketField(f)
			}
			tk := s.AddTicket(freshdesktest.Ticket{CustomFields: map[string]any{
				"cf_text": nil, "cf_paragraph": nil, "cf_checkbox": nil, "cf_number": nil, "cf_decimal": nil,
				"cf_date": nil, "cf_dropdown": nil,
				// no definition: the type follows the value the ticket was added with
				"cf_inferred_text": "a", "cf_inferred_checkbox": false, "cf_inferred_number": 1,
			}})
			field := "cf_" + tt.name
			before := tk.CustomFields[field]
			st, _, b := call(t, s, "PUT", "/api/v2/tickets/"+strconv.FormatInt(tk.ID, 10), s.APIKey(), "application/json",
				`{"custom_fields":{"`+field+`":`+tt.value+`}}`)
			got, _ := s.Ticket(tk.ID)
			if tt.code == "" {
				require.Equal(t, 200, st, "%s", b)
				var want any
				require.NoError(t, json.Unmarshal([]byte(tt.value), &want))
				assert.Equal(t, want, got.CustomFields[field])
				return
			}
			require.Equal(t, 400, st, "PUT %s=%s: %s", field, tt.value, b)
			errs := validationErrors(t, b)
			require.Len(t, errs, 1, "%s", b)
			assert.Equal(t, field, errs[0].Field)
			assert.Equal(t, tt.code, errs[0].Code)
			assert.Equal(t, before, got.CustomFields[field], "a refused update changes nothing")
		})
	}
}
