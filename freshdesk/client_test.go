package freshdesk_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/internal/fixtures"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waits records the waits a client asked for instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
	// advance, when set, moves a fake clock by each wait.
	advance func(time.Duration)
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	adv := w.advance
	w.mu.Unlock()
	if adv != nil {
		adv(d)
	}
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

func newClient(t *testing.T, cfg freshdesk.Config) *freshdesk.Client {
	t.Helper()
	c, err := freshdesk.New(cfg)
	require.NoError(t, err)
	return c
}

// fixtureServer answers like Freshdesk with the recorded shapes, verbatim
// but for the host in Link and attachment URLs.
func fixtureServer(t *testing.T) (*httptest.Server, *[]*http.Request) {
	t.Helper()
	var mu sync.Mutex
	var reqs []*http.Request
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.Clone(context.Background()))
		mu.Unlock()
		if user, pass, ok := r.BasicAuth(); !ok || user != "fixture-key" || pass != "X" {
			b, _ := fixtures.Freshdesk("error_unauthenticated")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write(b)
			return
		}
		serve := func(name string, status int) {
			b, err := fixtures.Freshdesk(name)
			require.NoError(t, err)
			if h, err := fixtures.FreshdeskHeaders(name); err == nil {
				for k, v := range h.Headers {
					w.Header().Set(k, strings.ReplaceAll(v, "https://acme.freshdesk.com", srv.URL))
				}
			}
			w.WriteHeader(status)
			w.Write(b)
		}
		switch {
		case r.Method == "GET" && r.URL.Path == "/api/v2/tickets/4711":
			serve("ticket", 200)
		case r.Method == "GET" && r.URL.Path == "/api/v2/tickets/4711/conversations" && r.URL.Query().Get("page") == "2":
			serve("conversations_page2", 200)
		case r.Method == "GET" && r.URL.Path == "/api/v2/tickets/4711/conversations":
			serve("conversations_page1", 200)
		case r.Method == "POST" && r.URL.Path == "/api/v2/tickets/4711/notes":
			serve("note_create_response", 201)
		case r.Method == "PUT" && r.URL.Path == "/api/v2/tickets/4711":
			serve("error_validation", 400)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &reqs
}

func TestClientDecodesFixtures(t *testing.T) {
	srv, reqs := fixtureServer(t)
	c := newClient(t, freshdesk.Config{BaseURL: srv.URL + "/api/v2", APIKey: "fixture-key"})
	ctx := t.Context()

	tk, err := c.Ticket(ctx, 4711)
	require.NoError(t, err)
	assert.Equal(t, "Nightly export fails with HTTP 500 after upgrade to 5.2", tk.Subject)
	assert.Equal(t, int64(48000000001), tk.RequesterID)
	assert.Equal(t, "5.2.0", tk.CustomFields["cf_product_version"])
	require.Len(t, tk.Attachments, 1)
	assert.Equal(t, int64(18234), tk.Attachments[0].Size)
	assert.Contains(t, tk.Attachments[0].AttachmentURL, "X-Amz-Expires=300")

	convs, err := c.Conversations(ctx, 4711)
	require.NoError(t, err)
	var ids []int64
	for _, cv := range convs {
		ids = append(ids, cv.ID)
	}
	assert.Equal(t, []int64{48009000001, 48009000002, 48009000003, 48009000004}, ids, "both pages, in order")
	assert.True(t, convs[0].Incoming)
	assert.True(t, convs[1].Private)
	assert.Equal(t, int64(94511), convs[0].Attachments[0].Size)

	// Every API call authenticated as apikey:X and the first page asked for 100.
	for _, r := range *reqs {
		assert.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("fixture-key:X")), r.Header.Get("Authorization"), r.URL.String())
	}
	assert.Equal(t, "100", (*reqs)[1].URL.Query().Get("per_page"))
	assert.Equal(t, "requester", (*reqs)[0].URL.Query().Get("include"))

	note, err := c.CreateNote(ctx, 4711, freshdesk.Note{Body: "<div>x</div>"})
	require.NoError(t, err)
	assert.Equal(t, int64(48009000004), note.ID)
	assert.True(t, note.Private)

	_, err = c.UpdateCustomFields(ctx, 4711, map[string]any{"cf_gitlab_issue": "https://gitlab.example.com/acme/exporter/-/issues/321"})
	var ae *freshdesk.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusBadRequest, ae.StatusCode)
	assert.Equal(t, "missing_field", ae.Code)
	assert.Equal(t, "body", ae.Field)
	require.Len(t, ae.Errors, 2)
	assert.Equal(t, "invalid_field", ae.Errors[1].Code)
	assert.Equal(t, "cf_gitlab_issue", ae.Errors[1].Field)

	bad := newClient(t, freshdesk.Config{BaseURL: srv.URL + "/api/v2", APIKey: "wrong"})
	_, err = bad.Ticket(ctx, 4711)
	require.ErrorIs(t, err, freshdesk.ErrUnauthorized)
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "invalid_credentials", ae.Code)
	assert.NotContains(t, err.Error(), "wrong", "the API key must not appear in errors")
}

func TestClientRequests(t *testing.T) {
	fd := freshdesktest.NewServer(t)
	tk := fd.AddTicket(freshdesktest.Ticket{Subject: "s", Description: "<p>d</p>",
		Requester:    freshdesktest.Contact{Name: "Jane Doe", Email: "jane@customer.example"},
		CustomFields: map[string]any{"cf_gitlab_issue": nil}})
	for i := range 250 {
		fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>c</p>", CreatedAt: time.Unix(int64(1e9+i), 0)})
	}
	c := fd.Client()
	ctx := t.Context()

	got, err := c.Ticket(ctx, tk.ID)
	require.NoError(t, err)
	require.NotNil(t, got.Requester)
	assert.Equal(t, "Jane Doe", got.Requester.Name)

	fd.AddAgent(freshdesktest.Agent{ID: 101, Name: "Sam Support", Email: "sam@acme.example"})
	ag, err := c.Agent(ctx, 101)
	require.NoError(t, err)
	assert.Equal(t, freshdesk.Agent{ID: 101, Name: "Sam Support", Email: "sam@acme.example"}, *ag)
	_, err = c.Agent(ctx, 102)
	assert.ErrorIs(t, err, freshdesk.ErrNotFound)

	convs, err := c.Conversations(ctx, tk.ID)
	require.NoError(t, err)
	assert.Len(t, convs, 250, "all three pages")
	var pages int
	for _, r := range fd.Requests() {
		if strings.HasSuffix(r.Path, "/conversations") {
			pages++
			assert.Equal(t, "100", r.Query.Get("per_page"))
		}
	}
	assert.Equal(t, 3, pages)

	note, err := c.CreateNote(ctx, tk.ID, freshdesk.Note{
		Body:        "<p>see log</p>",
		Attachments: []freshdesk.File{{Name: "a.log", ContentType: "text/plain", Content: strings.NewReader("line 1\n")}},
	})
	require.NoError(t, err)
	assert.True(t, note.Private, "notes are private by default")
	stored := fd.Conversations(tk.ID)
	last := stored[len(stored)-1]
	assert.Equal(t, note.ID, last.ID)
	assert.Equal(t, fd.AgentID(), last.UserID)
	require.Len(t, last.Attachments, 1)
	assert.Equal(t, "a.log", last.Attachments[0].Name)
	assert.Equal(t, "line 1\n", string(last.Attachments[0].Content))

	pub, err := c.CreateNote(ctx, tk.ID, freshdesk.Note{Body: "<p>hello</p>", Public: true})
	require.NoError(t, err)
	assert.False(t, pub.Private)

	upd, err := c.UpdateCustomFields(ctx, tk.ID, map[string]any{"cf_gitlab_issue": "https://gitlab.example/x/-/issues/1"})
	require.NoError(t, err)
	assert.Equal(t, "https://gitlab.example/x/-/issues/1", upd.CustomFields["cf_gitlab_issue"])
	_, err = c.UpdateCustomFields(ctx, tk.ID, map[string]any{"cf_nope": 1})
	var ae *freshdesk.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "invalid_field", ae.Code)
	assert.Equal(t, "cf_nope", ae.Field)
}

func TestClientErrors(t *testing.T) {
	fd := freshdesktest.NewServer(t)
	tk := fd.AddTicket(freshdesktest.Ticket{Subject: "s"})
	tests := []struct {
		name    string
		cfg     func(freshdesk.Config) freshdesk.Config
		id      int64
		is      error
		code    string
		message string
	}{
		{"unknown ticket", nil, 999, freshdesk.ErrNotFound, "", "404 not found"},
		{"wrong api key", func(c freshdesk.Config) freshdesk.Config { c.APIKey = "nope"; return c }, tk.ID, freshdesk.ErrUnauthorized, "invalid_credentials", "401 unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fd.Config()
			if tt.cfg != nil {
				cfg = tt.cfg(cfg)
			}
			_, err := newClient(t, cfg).Ticket(t.Context(), tt.id)
			require.ErrorIs(t, err, tt.is)
			var ae *freshdesk.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.code, ae.Code)
			assert.Contains(t, err.Error(), tt.message)
		})
	}
}

func TestClientBadConfig(t *testing.T) {
	for _, cfg := range []freshdesk.Config{
		{BaseURL: "https://acme.freshdesk.com/api/v2"},
		{BaseURL: "acme.freshdesk.com", APIKey: "k"},
		{BaseURL: "ftp://acme", APIKey: "k"},
	} {
		_, err := freshdesk.New(cfg)
		assert.ErrorIs(t, err, freshdesk.ErrConfig, "New(%+v)", cfg)
	}
}

func TestClientRateLimit(t *testing.T) {
	tests := []struct {
		name       string
		burst      int
		retryAfter time.Duration
		maxWait    time.Duration
		maxRetries int
		wantErr    bool
		wantWaits  []time.Duration
	}{
		{"burst within the bound", 3, 2 * time.Second, 0, 0, false, []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}},
		{"fixture Retry-After 37s", 1, 37 * time.Second, 0, 0, false, []time.Duration{37 * time.Second}},
		{"retry-after over the bound", 1, 90 * time.Second, time.Minute, 0, true, nil},
		{"more 429s than retries", 4, time.Second, 0, 2, true, []time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := freshdesktest.NewServer(t)
			tk := fd.AddTicket(freshdesktest.Ticket{Subject: "s"})
			var w waits
			cfg := fd.Config()
			cfg.Wait, cfg.MaxRetryWait, cfg.MaxRetries = w.wait, tt.maxWait, tt.maxRetries
			fd.RateLimitNext(tt.burst, tt.retryAfter)
			_, err := newClient(t, cfg).Ticket(t.Context(), tk.ID)
			if tt.wantErr {
				require.ErrorIs(t, err, freshdesk.ErrRateLimited)
				var rl *freshdesk.RateLimitError
				require.ErrorAs(t, err, &rl)
				assert.Equal(t, tt.retryAfter, rl.RetryAfter)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.wantWaits, w.all(), "waits honour Retry-After")
		})
	}
}

func TestClientRateLimitStreamedNote(t *testing.T) {
	fd := freshdesktest.NewServer(t)
	tk := fd.AddTicket(freshdesktest.Ticket{Subject: "s"})
	var w waits
	cfg := fd.Config()
	cfg.Wait = w.wait
	c := newClient(t, cfg)

	// A seekable file is sent again after the 429.
	fd.RateLimitNext(1, time.Second)
	_, err := c.CreateNote(t.Context(), tk.ID, freshdesk.Note{Body: "b", Attachments: []freshdesk.File{{Name: "a", Content: strings.NewReader("abc")}}})
	require.NoError(t, err)
	convs := fd.Conversations(tk.ID)
	require.Len(t, convs, 1)
	assert.Equal(t, "abc", string(convs[0].Attachments[0].Content))

	// A stream that cannot be replayed gives the 429 back rather than a broken note.
	fd.RateLimitNext(1, time.Second)
	_, err = c.CreateNote(t.Context(), tk.ID, freshdesk.Note{Body: "b", Attachments: []freshdesk.File{{Name: "a", Content: io.MultiReader(strings.NewReader("abc"))}}})
	require.ErrorIs(t, err, freshdesk.ErrRateLimited)
	assert.Len(t, fd.Conversations(tk.ID), 1)
}

func TestOpenAttachment(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), 1000)
	setup := func(t *testing.T) (*freshdesktest.Server, *freshdesk.Client, freshdesk.Attachment, int64) {
		fd := freshdesktest.NewServer(t)
		tk := fd.AddTicket(freshdesktest.Ticket{Subject: "s"})
		fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "x", Attachments: []freshdesktest.Attachment{{Name: "big.bin", Content: content}}})
		c := fd.Client()
		convs, err := c.Conversations(t.Context(), tk.ID)
		require.NoError(t, err)
		return fd, c, convs[0].Attachments[0], tk.ID
	}
	read := func(t *testing.T, c *freshdesk.Client, id int64, a freshdesk.Attachment) ([]byte, error) {
		rc, err := c.OpenAttachment(t.Context(), id, a)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}

	t.Run("fresh url, no credentials sent", func(t *testing.T) {
		fd, c, a, id := setup(t)
		got, err := read(t, c, id, a)
		require.NoError(t, err)
		assert.Equal(t, content, got)
		reqs := fd.Requests()
		dl := reqs[len(reqs)-1]
		assert.True(t, strings.HasPrefix(dl.Path, "/s3/"), dl.Path)
		assert.Empty(t, dl.Header.Get("Authorization"), "the pre-signed URL must be fetched without the Freshdesk credentials")
	})
	t.Run("expired url is listed again", func(t *testing.T) {
		fd, c, a, id := setup(t)
		fd.ExpireAttachmentURLs()
		got, err := read(t, c, id, a)
		require.NoError(t, err)
		assert.Equal(t, content, got)
		var statuses []int
		for _, r := range fd.Requests() {
			if strings.HasPrefix(r.Path, "/s3/") {
				statuses = append(statuses, r.Status)
			}
		}
		assert.Equal(t, []int{403, 200}, statuses)
	})
	t.Run("expired for good", func(t *testing.T) {
		fd, c, a, id := setup(t)
		fd.ExpireAttachmentURLsAlways()
		_, err := read(t, c, id, a)
		require.ErrorIs(t, err, freshdesk.ErrAttachmentExpired)
		assert.Contains(t, err.Error(), "big.bin")
	})
	t.Run("clock past X-Amz-Expires", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		fd := freshdesktest.NewServer(t, freshdesktest.WithClock(clock))
		tk := fd.AddTicket(freshdesktest.Ticket{Subject: "s", Attachments: []freshdesktest.Attachment{{Name: "t.txt", Content: []byte("hi")}}})
		c := fd.Client()
		got, err := c.Ticket(t.Context(), tk.ID)
		require.NoError(t, err)
		mu.Lock()
		now = now.Add(freshdesktest.URLExpiry + time.Second)
		mu.Unlock()
		b, err := read(t, c, tk.ID, got.Attachments[0])
		require.NoError(t, err, "a fresh URL is fetched after the 403")
		assert.Equal(t, "hi", string(b))
	})
}

func TestClientCancel(t *testing.T) {
	fd := freshdesktest.NewServer(t)
	tk := fd.AddTicket(freshdesktest.Ticket{Subject: "s"})
	fd.SetLatency(time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := fd.Client().Ticket(ctx, tk.ID)
	assert.ErrorIs(t, err, context.Canceled)

	// Cancelled while waiting out a 429.
	fd.SetLatency(0)
	fd.RateLimitNext(1, 30*time.Second)
	ctx, cancel = context.WithCancel(t.Context())
	cfg := fd.Config()
	cfg.Wait = func(ctx context.Context, d time.Duration) error { cancel(); <-ctx.Done(); return ctx.Err() }
	_, err = newClient(t, cfg).Ticket(ctx, tk.ID)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestSecretNeverPrints(t *testing.T) {
	k := freshdesk.Secret("s3cret")
	b, _ := json.Marshal(struct{ K string }{k.String()})
	assert.NotContains(t, string(b), "s3cret")
	assert.Equal(t, "REDACTED", k.String())
	assert.NotContains(t, strings.Join([]string{k.GoString(), k.LogValue().String()}, " "), "s3cret")
	assert.False(t, errors.Is(nil, freshdesk.ErrNotFound))
}
