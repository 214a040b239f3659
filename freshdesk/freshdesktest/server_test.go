package freshdesktest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/internal/fixtures"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// get calls the fake with the key and returns status, headers and body.
func call(t *testing.T, s *freshdesktest.Server, method, path, key, ctype, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL()+path, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.SetBasicAuth(key, "X")
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func firstOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var arr []json.RawMessage
	require.NoError(t, json.Unmarshal(b, &arr), string(b))
	require.NotEmpty(t, arr)
	return arr[0]
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fixtures.Freshdesk(name)
	require.NoError(t, err)
	return b
}

// scenario loads the fixtures' ticket 4711 into the fake.
func scenario(t *testing.T, opts ...freshdesktest.Option) (*freshdesktest.Server, freshdesktest.Ticket) {
	s := freshdesktest.NewServer(t, opts...)
	tk := s.AddTicket(freshdesktest.Ticket{
		ID: 4711, Subject: "Nightly export fails with HTTP 500 after upgrade to 5.2",
		Description:  `<div>Since the upgrade to 5.2 the nightly export stops with <b>HTTP 500</b>.<br>Log file attached.</div>`,
		Requester:    freshdesktest.Contact{Name: "Jane Doe", Email: "jane.doe@customer.example"},
		CustomFields: map[string]any{"cf_gitlab_issue": nil, "cf_product_version": "5.2.0"},
		Attachments:  []freshdesktest.Attachment{{Name: "export-2026-03-01.log", ContentType: "text/plain", Content: []byte("log")}},
	})
	s.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>Here is a screenshot of the error dialog.</div>", Incoming: true, UserID: 48000000001, FromEmail: "jane.doe@customer.example",
		Attachments: []freshdesktest.Attachment{{Name: "error-dialog.png", ContentType: "image/png", Content: []byte("\x89PNG")}}})
	s.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>Reproduced on staging.</div>", Private: true, UserID: 48000000101, Source: 2})
	s.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>Thanks Jane.</div>", UserID: 48000000101})
	s.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>[gitlab-bridge] Escalated</div>", Private: true, UserID: s.AgentID(), Source: 2})
	return s, tk
}

func TestShapesMatchFixtures(t *testing.T) {
	s, tk := scenario(t)
	key := s.APIKey()

	st, _, b := call(t, s, "GET", "/api/v2/tickets/4711", key, "", "")
	require.Equal(t, 200, st)
	assert.Equal(t, keys(t, fixture(t, "ticket")), keys(t, b), "ticket fields")
	var tj struct {
		Attachments []json.RawMessage `json:"attachments"`
	}
	require.NoError(t, json.Unmarshal(b, &tj))
	var fj struct {
		Attachments []json.RawMessage `json:"attachments"`
	}
	require.NoError(t, json.Unmarshal(fixture(t, "ticket"), &fj))
	assert.Equal(t, keys(t, fj.Attachments[0]), keys(t, tj.Attachments[0]), "attachment fields")

	st, h, b := call(t, s, "GET", "/api/v2/tickets/4711/conversations?per_page=3&page=1", key, "", "")
	require.Equal(t, 200, st)
	assert.Equal(t, keys(t, firstOf(t, fixture(t, "conversations_page1"))), keys(t, firstOf(t, b)), "conversation fields")
	rec, err := fixtures.FreshdeskHeaders("conversations_page1")
	require.NoError(t, err)
	for name := range rec.Headers {
		assert.NotEmpty(t, h.Get(name), "header %s of the fixture", name)
	}
	wantLink := strings.ReplaceAll(rec.Headers["Link"], "https://acme.freshdesk.com", s.URL())
	assert.Equal(t, wantLink, h.Get("Link"), "Link header in the fixture's format")

	st, h, _ = call(t, s, "GET", "/api/v2/tickets/4711/conversations?per_page=3&page=2", key, "", "")
	require.Equal(t, 200, st)
	assert.Empty(t, h.Get("Link"), "no Link on the last page")

	st, _, b = call(t, s, "GET", "/api/v2/tickets/4711?include=conversations", key, "", "")
	require.Equal(t, 200, st)
	assert.Equal(t, keys(t, fixture(t, "ticket_include_conversations")), keys(t, b))

	st, h, b = call(t, s, "POST", "/api/v2/tickets/4711/notes", key, "application/json", string(fixture(t, "note_create_request")))
	require.Equal(t, http.StatusCreated, st)
	assert.Equal(t, keys(t, fixture(t, "note_create_response")), keys(t, b), "note response fields")
	assert.Regexp(t, regexp.MustCompile(`/api/v2/conversations/[0-9]+$`), h.Get("Location"))

	st, _, b = call(t, s, "PUT", "/api/v2/tickets/4711", key, "application/json", string(fixture(t, "ticket_update_request")))
	require.Equal(t, 200, st)
	assert.Equal(t, keys(t, fixture(t, "ticket")), keys(t, b))
	got, _ := s.Ticket(tk.ID)
	assert.Equal(t, "https://gitlab.example.com/acme/exporter/-/issues/321", got.CustomFields["cf_gitlab_issue"])

	st, _, b = call(t, s, "PUT", "/api/v2/tickets/4711", key, "application/json", `{"custom_fields":{"cf_unknown":1}}`)
	require.Equal(t, 400, st)
	assert.Equal(t, keys(t, fixture(t, "error_validation")), keys(t, b), "validation error shape")

	st, _, b = call(t, s, "POST", "/api/v2/tickets/4711/notes", key, "application/json", `{"private":true}`)
	require.Equal(t, 400, st)
	assert.Contains(t, string(b), `"code":"missing_field"`)

	st, _, b = call(t, s, "GET", "/api/v2/tickets/4711", "wrong", "", "")
	require.Equal(t, 401, st)
	assert.JSONEq(t, string(fixture(t, "error_unauthenticated")), string(b))
	st, _, _ = call(t, s, "GET", "/api/v2/tickets/4711", "", "", "")
	assert.Equal(t, 401, st, "no credentials")

	st, _, _ = call(t, s, "GET", "/api/v2/tickets/1", key, "", "")
	assert.Equal(t, 404, st)
}

func TestRateLimitInjection(t *testing.T) {
	s, _ := scenario(t)
	s.RateLimitNext(2, 37*time.Second)
	rec, err := fixtures.FreshdeskHeaders("rate_limited")
	require.NoError(t, err)
	for range 2 {
		st, h, _ := call(t, s, "GET", "/api/v2/tickets/4711/conversations?page=1", s.APIKey(), "", "")
		assert.Equal(t, rec.Status, st)
		for name, v := range rec.Headers {
			if name == "X-RateLimit-Remaining" || name == "Retry-After" {
				assert.Equal(t, v, h.Get(name), name)
			}
			assert.NotEmpty(t, h.Get(name), name)
		}
	}
	st, _, _ := call(t, s, "GET", "/api/v2/tickets/4711", s.APIKey(), "", "")
	assert.Equal(t, 200, st, "the burst is over")

	s.FailNext(1, 503)
	st, _, _ = call(t, s, "GET", "/api/v2/tickets/4711", s.APIKey(), "", "")
	assert.Equal(t, 503, st)
	s.FailWhen(func(r *http.Request) (int, bool) { return 500, r.Method == "POST" })
	st, _, _ = call(t, s, "POST", "/api/v2/tickets/4711/notes", s.APIKey(), "application/json", `{"body":"x"}`)
	assert.Equal(t, 500, st)
	assert.Len(t, s.Conversations(4711), 4, "a failed POST stores nothing")

	var statuses []int
	for _, r := range s.Requests() {
		statuses = append(statuses, r.Status)
	}
	assert.Equal(t, []int{429, 429, 200, 503, 500}, statuses, "recorded requests")
}

func TestAttachmentURLs(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 42, 0, 0, time.UTC)
	s, _ := scenario(t, freshdesktest.WithClock(func() time.Time { return now }))
	_, _, b := call(t, s, "GET", "/api/v2/tickets/4711", s.APIKey(), "", "")
	var tk struct {
		Attachments []struct {
			URL  string `json:"attachment_url"`
			Size int    `json:"size"`
		} `json:"attachments"`
	}
	require.NoError(t, json.Unmarshal(b, &tk))
	u, err := url.Parse(tk.Attachments[0].URL)
	require.NoError(t, err)
	assert.Equal(t, "300", u.Query().Get("X-Amz-Expires"))
	assert.Equal(t, "20260302T104200Z", u.Query().Get("X-Amz-Date"))
	assert.Equal(t, 3, tk.Attachments[0].Size)
	path := strings.TrimPrefix(tk.Attachments[0].URL, s.URL())

	st, _, body := call(t, s, "GET", path, "", "", "")
	assert.Equal(t, 200, st)
	assert.Equal(t, "log", string(body))

	st, _, body = call(t, s, "GET", path, s.APIKey(), "", "")
	assert.Equal(t, 400, st, "S3 refuses a second auth mechanism")
	assert.Contains(t, string(body), "InvalidArgument")

	tampered := strings.Replace(path, "X-Amz-Date=20260302T104200Z", "X-Amz-Date=20260302T114200Z", 1)
	st, _, _ = call(t, s, "GET", tampered, "", "", "")
	assert.Equal(t, 403, st, "a changed date breaks the signature")

	now = now.Add(301 * time.Second)
	st, _, body = call(t, s, "GET", path, "", "", "")
	assert.Equal(t, 403, st, "expired")
	assert.Contains(t, string(body), "Request has expired")
}

func TestNewAndClose(t *testing.T) {
	s := freshdesktest.New(freshdesktest.WithAPIKey("k"), freshdesktest.WithAgentID(7))
	assert.Equal(t, "k", s.APIKey())
	assert.Equal(t, int64(7), s.AgentID())
	assert.Equal(t, s.URL()+"/api/v2", s.BaseURL())
	s.Close()
	_, err := http.Get(s.URL())
	assert.Error(t, err, "closed")
}

func TestFailWhenMayChangeState(t *testing.T) {
	s, _ := scenario(t)
	s.FailWhen(func(r *http.Request) (int, bool) {
		if r.Method == http.MethodPut {
			s.AddConversation(4711, freshdesktest.Conversation{Body: "<p>arrived meanwhile</p>"})
		}
		return 0, false
	})
	st, _, _ := call(t, s, "PUT", "/api/v2/tickets/4711", s.APIKey(), "application/json", `{"custom_fields":{"cf_product_version":"5.3"}}`)
	assert.Equal(t, 200, st)
	assert.Len(t, s.Conversations(4711), 5)
}

func TestGeneratedAttachment(t *testing.T) {
	s := freshdesktest.NewServer(t)
	const n = 100_000 // spans several generated chunks
	tk := s.AddTicket(freshdesktest.Ticket{Subject: "big", Attachments: []freshdesktest.Attachment{{Name: "core", Size: n}}})
	got, err := s.Client().Ticket(t.Context(), tk.ID)
	require.NoError(t, err)
	require.Equal(t, int64(n), got.Attachments[0].Size)
	st, _, body := call(t, s, "GET", strings.TrimPrefix(got.Attachments[0].AttachmentURL, s.URL()), "", "", "")
	require.Equal(t, 200, st)
	assert.Equal(t, freshdesktest.Pattern(n), body)
}
