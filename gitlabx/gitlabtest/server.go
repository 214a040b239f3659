package gitlabtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// DefaultToken is the Private-Token that Client uses unless WithToken
// chooses another one.
const DefaultToken = "glpat-gitlabtest-bot-token"

// DeveloperToken is the token of Developer(), the human user that seeded
// issues and merge requests belong to.
const DeveloperToken = "glpat-gitlabtest-developer-token"

const developerID = 2

// DefaultMaxUploadSize is the largest markdown upload the server accepts
// unless WithMaxUploadSize says otherwise: GitLab's default
// max_attachment_size, 100 MiB. Tests of the limit should set a small one.
const DefaultMaxUploadSize = 100 << 20

// Option configures a Server.
type Option func(*config)

type config struct {
	token      string
	bot        User
	maxUpload  int64
	clock      func() time.Time
	logger     *slog.Logger
	closeOrder MergeCloseOrder
	searchMode SearchMode
	// searchLimit is the per-user, per-minute limit on searches; 0 is off.
	searchLimit    int
	searchLimitSet bool
	wall           func() time.Time
	legacyIssueURL bool
	scopedLabels   bool
}

// WithToken sets the token of the bot user (see BotUser and Token).
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithBotUser sets the user that owns Token. Zero fields keep their defaults
// (ID 1, username "opskit-bot").
func WithBotUser(u User) Option { return func(c *config) { c.bot = u } }

// WithMaxUploadSize sets the largest markdown upload, in bytes. Larger
// uploads answer 413 like GitLab does.
func WithMaxUploadSize(n int64) Option { return func(c *config) { c.maxUpload = n } }

// WithClock sets the clock used for created_at, updated_at and friends.
// The default is a deterministic clock that starts at 2026-01-01T00:00:00Z
// and moves one second forward each time it is read, so output that prints
// times is reproducible.
func WithClock(now func() time.Time) Option { return func(c *config) { c.clock = now } }

// WithMergeCloseOrder fixes the order in which a merge's "merge" event
// and the "close" events of the issues it closes are delivered (see
// MergeCloseOrder). GitLab runs them as independent background jobs, so
// the default, CloseOrderRandom, picks one order per merge; pin each order
// in a test of its own to cover both.
func WithMergeCloseOrder(o MergeCloseOrder) Option { return func(c *config) { c.closeOrder = o } }

// WithLegacyIssueURLs makes issues' web_url (and the url in their
// webhooks) "<project>/-/issues/N", as GitLab did before work items. The
// default is "<project>/-/work_items/N", which GitLab.com returns now; code
// that parses these URLs must accept both.
func WithLegacyIssueURLs() Option { return func(c *config) { c.legacyIssueURL = true } }

// issueWebURL is an issue's web_url.
func (s *Server) issueWebURL(p *project, iid int64) string {
	seg := "work_items"
	if s.cfg.legacyIssueURL {
		seg = "issues"
	}
	return fmt.Sprintf("%s/%s/-/%s/%d", s.URL(), p.Path, seg, iid)
}

// WithScopedLabels makes scoped labels mutually exclusive, as in GitLab
// Premium: adding "workflow::Doing" removes any other "workflow::" label
// (the scope is everything before the last "::"). Off by default, as in
// GitLab Free, where an issue may carry several labels of one scope.
func WithScopedLabels() Option { return func(c *config) { c.scopedLabels = true } }

// WithLogger sets a logger for the requests the server answers; nil discards.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Server is a stateful in-memory GitLab REST v4 server on loopback.
// It is safe for concurrent use. The caller must call Close when finished
// (NewServer does that through tb.Cleanup).
//
// Methods that seed or read state by project ID (AddIssue, Issues, SetFile,
// ...) panic when the project was never added, or when they name an issue,
// merge request or ref that does not exist: that is a mistake in the test,
// not a condition to handle. The event builders (MergeRequestEvent, ...)
// return errors instead.
type Server struct {
	hs  *httptest.Server
	cfg config

	mu       sync.Mutex
	st       state
	rel      releaseStore    // releases.go
	users    map[string]User // token → user
	requests []Request
	failN    int
	failCode int
	failWhen []func(*http.Request) (int, bool)
	// after-apply failures: the call changes state, then answers an error.
	afterN    int
	afterCode int
	afterWhen []func(*http.Request) (int, bool)
	latency   time.Duration
	retryAft  string
	hq        hookQueue
	// reqUUID is the X-Gitlab-Event-UUID of the API request being routed
	// (set under mu), which the events it causes carry.
	reqUUID string
	// search rate limit: requests per user in the current minute window.
	searchCount  map[searchKey]int
	searchWindow int64
	ftsCache     map[string][]string // full-text index by field text
	closed       bool
	inflight     map[*http.Request]context.CancelFunc
	closeOnce    sync.Once
}

// New starts a Server on 127.0.0.1. The caller must call Close.
func New(opts ...Option) *Server {
	s := newServer(opts...)
	s.hs = httptest.NewServer(s)
	return s
}

// NewServer starts a Server and closes it through tb.Cleanup.
func NewServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := New(opts...)
	tb.Cleanup(s.Close)
	return s
}

func newServer(opts ...Option) *Server {
	cfg := config{token: DefaultToken, maxUpload: DefaultMaxUploadSize}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.bot.ID == 0 {
		cfg.bot.ID = 1
	}
	if cfg.bot.Username == "" {
		cfg.bot.Username = "opskit-bot"
	}
	if cfg.bot.Name == "" {
		cfg.bot.Name = "opskit bot"
	}
	if cfg.bot.Email == "" {
		cfg.bot.Email = cfg.bot.Username + "@example.com"
	}
	cfg.bot.Bot = true
	if cfg.clock == nil {
		t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		cfg.clock = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			t = t.Add(time.Second)
			return t
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if !cfg.searchLimitSet {
		cfg.searchLimit = DefaultSearchRateLimit
	}
	if cfg.wall == nil {
		cfg.wall = time.Now
	}
	s := &Server{cfg: cfg, users: map[string]User{cfg.token: cfg.bot}, retryAft: "1", inflight: map[*http.Request]context.CancelFunc{}}
	s.st.init()
	s.st.users[cfg.bot.ID] = cfg.bot
	if cfg.bot.ID != developerID {
		dev := User{ID: developerID, Username: "developer", Name: "Dev Eloper", Email: "developer@example.com"}
		s.st.users[developerID] = dev
		s.users[DeveloperToken] = dev
	}
	return s
}

// URL returns the base URL of the server, without "/api/v4".
func (s *Server) URL() string { return s.hs.URL }

// Token returns the bot user's Private-Token. Requests without a known token
// answer 401.
func (s *Server) Token() string { return s.cfg.token }

// BotUser returns the user whose token Client uses.
func (s *Server) BotUser() User { return s.cfg.bot }

// Developer returns the human user (ID 2, "developer", token
// DeveloperToken) who authors seeded issues and merge requests, so the
// events built from them are not the bot's own.
func (s *Server) Developer() User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.users[developerID]
}

// ClientFor is Client authenticated with another token (see AddUser and
// DeveloperToken).
func (s *Server) ClientFor(token string, opts ...gitlab.ClientOptionFunc) *gitlab.Client {
	all := append([]gitlab.ClientOptionFunc{
		gitlab.WithBaseURL(s.URL() + "/api/v4"),
		gitlab.WithCustomBackoff(fastBackoff),
	}, opts...)
	c, err := gitlab.NewClient(token, all...)
	if err != nil {
		panic("gitlabtest: " + err.Error())
	}
	return c
}

// AddUser registers another user and the token that authenticates as them,
// so tests can act as someone other than the bot. A zero ID gets the next
// free one; the stored user is returned.
func (s *Server) AddUser(u User, token string) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == 0 {
		u.ID = int64(len(s.st.users)) + 100
		for s.st.users[u.ID].ID != 0 {
			u.ID++
		}
	}
	if u.Username == "" {
		u.Username = fmt.Sprintf("user%d", u.ID)
	}
	if u.Name == "" {
		u.Name = u.Username
	}
	if u.Email == "" {
		u.Email = u.Username + "@example.com"
	}
	s.st.users[u.ID] = u
	s.users[token] = u
	return u
}

// Client returns a client-go client for the server, authenticated as BotUser.
// It retries like client-go does by default, but with millisecond back-off
// so failure-injection tests stay fast; opts are applied after these
// defaults and may override them (gitlab.WithoutRetries, for example).
// It panics if client-go rejects an option, which only a programming error
// can cause.
func (s *Server) Client(opts ...gitlab.ClientOptionFunc) *gitlab.Client {
	return s.ClientFor(s.Token(), opts...)
}

func fastBackoff(_, _ time.Duration, attempt int, _ *http.Response) time.Duration {
	return time.Duration(attempt) * time.Millisecond
}

// Close shuts the server down and blocks until outstanding requests finish;
// calls waiting out SetLatency end at once with 503. Webhooks still queued
// (see AddHook) are dropped. Close may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for _, cancel := range s.inflight {
			cancel()
		}
		s.mu.Unlock()
		s.hs.Close()
		s.stopHooks()
	})
}

// FailNext makes the next n API calls answer status with GitLab's error
// body ({"message":"500 Internal Server Error"}). A 429 answers
// {"message":"Retry later"} with Retry-After (see SetRetryAfter) but no
// RateLimit-* headers, which would make client-go throttle the rest of the
// test. n <= 0 clears it.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 {
		n = 0
	}
	s.failN, s.failCode = n, status
}

// SetRetryAfter sets the Retry-After value (seconds) sent with injected 429
// answers; the default is "1".
func (s *Server) SetRetryAfter(seconds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAft = fmt.Sprint(seconds)
}

// FailWhen adds a targeted failure: for each API call, f is asked first, and
// when it returns ok the call answers status without touching state. f may
// read r.Body; the handler still sees the whole body. f runs without the
// server's lock held, so it may call the Server's own methods (for example
// AddTag, to imitate a tag created by someone else between a list and a
// create) and then return ok == false; it may be called concurrently.
func (s *Server) FailWhen(f func(r *http.Request) (status int, ok bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWhen = append(s.failWhen, f)
}

// ClearFailures removes every FailNext and FailWhen rule.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failWhen = 0, nil
	s.afterN, s.afterWhen = 0, nil
}

// FailNextAfterApply makes the next n authenticated API calls do their work
// (an issue or note is created, labels change) and then answer status
// anyway, as when a proxy times out after GitLab committed. This is the
// case in which client-go's retries of a POST duplicate issues and notes.
// n <= 0 clears it.
func (s *Server) FailNextAfterApply(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterN, s.afterCode = max(n, 0), status
}

// FailAfterApplyWhen is FailWhen for FailNextAfterApply: calls for which f
// returns ok do their work and then answer status. f follows the same
// rules as in FailWhen.
func (s *Server) FailAfterApplyWhen(f func(r *http.Request) (status int, ok bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterWhen = append(s.afterWhen, f)
}

// SetLatency makes every API call wait d before it is answered (the wait
// ends early when the client goes away). Zero turns it off.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Request is one API call the server received.
type Request struct {
	Method string
	Path   string // unescaped, e.g. "/api/v4/projects/ops/app/issues"
	// RawPath is the path as sent, e.g. "/api/v4/projects/ops%2Fapp/issues".
	RawPath string
	Query   url.Values
	// RawQuery is the query string as sent.
	RawQuery string
	Header   http.Header
	Body     []byte
	Status   int // the status the server answered
}

// Requests returns a copy of every API call received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP answers one request. Server implements http.Handler so it can
// also be mounted in a caller's own server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	limit := s.cfg.maxUpload + 1<<20
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		writeError(sw, http.StatusBadRequest, "400 Bad request - "+err.Error())
		return
	}
	rec := Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawPath:  r.URL.EscapedPath(),
		Query:    r.URL.Query(),
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
		Body:     body,
	}
	defer func() {
		s.mu.Lock()
		rec.Status = sw.status
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
		s.cfg.logger.Debug("gitlabtest request", "method", rec.Method, "path", rec.RawPath, "status", rec.Status)
	}()
	if int64(len(body)) > limit {
		writeError(sw, http.StatusRequestEntityTooLarge, "413 Request Entity Too Large")
		return
	}
	// Close cancels calls still in flight (those waiting out SetLatency).
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s.mu.Lock()
	if s.closed {
		cancel()
	}
	s.inflight[r] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, r)
		s.mu.Unlock()
	}()
	s.serve(sw, r.WithContext(ctx), body)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	latency := s.latency
	rules := append([]func(*http.Request) (int, bool)(nil), s.failWhen...)
	afterRules := append([]func(*http.Request) (int, bool)(nil), s.afterWhen...)
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client went away, or Close cancelled the call.
			t.Stop()
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				writeError(w, http.StatusServiceUnavailable, "503 Service Unavailable")
			}
			return
		}
	}
	if !strings.HasPrefix(r.URL.EscapedPath(), "/api/v4/") {
		writeError(w, http.StatusNotFound, "404 Not Found")
		return
	}
	for _, f := range rules {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if code, ok := f(r); ok {
			s.writeInjected(w, code)
			return
		}
	}
	s.mu.Lock()
	if s.failN > 0 {
		s.failN--
		code := s.failCode
		s.mu.Unlock()
		s.writeInjected(w, code)
		return
	}
	s.mu.Unlock()
	user, ok := s.authenticate(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	after := 0
	for _, f := range afterRules {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if code, ok := f(r); ok {
			after = code
			break
		}
	}
	if after == 0 {
		s.mu.Lock()
		if s.afterN > 0 {
			s.afterN--
			after = s.afterCode
		}
		s.mu.Unlock()
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" && len(bytes.TrimSpace(body)) > 0 {
		var obj map[string]any
		if json.Unmarshal(body, &obj) != nil {
			writeError(w, http.StatusBadRequest, "400 Bad request - malformed JSON body")
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	req := &apiRequest{r: r, body: body, user: user, segs: splitPath(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v4/"))}
	if after != 0 {
		s.route(httptest.NewRecorder(), req) // apply, and lose the answer
		s.writeInjected(w, after)
		return
	}
	s.route(w, req)
}

func (s *Server) writeInjected(w http.ResponseWriter, code int) {
	if code == http.StatusTooManyRequests {
		s.mu.Lock()
		ra := s.retryAft
		s.mu.Unlock()
		w.Header().Set("Retry-After", ra)
		writeError(w, code, "Retry later")
		return
	}
	writeError(w, code, fmt.Sprintf("%d %s", code, http.StatusText(code)))
}

func (s *Server) authenticate(r *http.Request) (User, bool) {
	tok := r.Header.Get("Private-Token")
	if tok == "" {
		tok = r.Header.Get("Job-Token")
	}
	if tok == "" {
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			tok = a[7:]
		}
	}
	if tok == "" {
		tok = r.URL.Query().Get("private_token")
	}
	if tok == "" {
		return User{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[tok]
	return u, ok
}

func splitPath(p string) []string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	out := make([]string, 0, len(parts))
	for _, x := range parts {
		if u, err := url.PathUnescape(x); err == nil {
			x = u
		}
		out = append(out, x)
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "500 Internal Server Error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError answers GitLab's {"message": ...} error shape.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg})
}

// writeParamError answers GitLab's parameter-validation shape
// ({"error": "title is missing"}).
func writeParamError(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": msg})
}
