package freshdesktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opskit/opskit/freshdesk"
)

// DefaultAPIKey is the API key a Server accepts unless WithAPIKey says otherwise.
const DefaultAPIKey = "freshdesktest-api-key"

// DefaultAgentID is the user ID of the agent the API key belongs to; notes
// created through the API carry it as user_id.
const DefaultAgentID int64 = 48000000999

// URLExpiry is how long attachment URLs stay valid unless WithURLExpiry says
// otherwise (Freshdesk's pre-signed S3 URLs carry X-Amz-Expires=300).
const URLExpiry = 5 * time.Minute

// Option configures a Server.
type Option func(*Server)

// WithAPIKey sets the only API key the server accepts.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithAgentID sets the user ID of the API key's agent.
func WithAgentID(id int64) Option { return func(s *Server) { s.agentID = id } }

// WithClock sets the server's clock (default time.Now). Attachment URL
// expiry and created_at of new notes follow it.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithURLExpiry sets how long attachment URLs stay valid.
func WithURLExpiry(d time.Duration) Option { return func(s *Server) { s.expiry = d } }

// DefaultRateLimit is the API credits per minute a Server grants unless
// WithRateLimit says otherwise: the Enterprise plan's 700, as in the
// recorded X-RateLimit-Total.
const DefaultRateLimit = 700

// WithRateLimit sets the API credits per minute (X-RateLimit-Total). The
// minute starts with the first call after the previous one ended, and a
// call that needs more credits than remain answers 429 with Retry-After
// (the seconds until the minute ends). n <= 0 turns the limit off: no call
// is refused and no X-RateLimit-* headers are sent (for benchmarks and
// load tests that are not about the limit).
func WithRateLimit(n int) Option { return func(s *Server) { s.limit = n } }

// FieldType is the type of a custom ticket field, as Freshdesk's ticket
// fields API names it.
type FieldType string

// Custom ticket field types (Freshdesk API v2, Ticket Fields) and the
// values an update may set them to; null clears any of them.
const (
	FieldText      FieldType = "custom_text"      // a string of at most 255 characters
	FieldParagraph FieldType = "custom_paragraph" // a string
	FieldCheckbox  FieldType = "custom_checkbox"  // true or false
	FieldNumber    FieldType = "custom_number"    // an integer
	FieldDecimal   FieldType = "custom_decimal"   // any number
	FieldDate      FieldType = "custom_date"      // "yyyy-mm-dd"
	FieldDropdown  FieldType = "custom_dropdown"  // one of Choices
)

// TicketField declares the type of a custom ticket field (name with the
// "cf_" prefix). Fields are account-wide, as in Freshdesk: the declaration
// holds for every ticket that has the field.
type TicketField struct {
	Name    string
	Type    FieldType
	Choices []string // the values a FieldDropdown accepts
}

// Contact is a ticket's requester.
type Contact struct {
	ID    int64
	Name  string
	Email string
}

// Attachment is a file held by the fake. Content is served at an expiring
// URL; the listed size is len(Content). With Content nil and Size set, the
// fake serves Size bytes of a repeating pattern (see Pattern) without
// holding them, for tests and benchmarks with large files.
type Attachment struct {
	ID          int64 // 0 assigns one
	Name        string
	ContentType string
	Content     []byte
	Size        int64 // used only when Content is nil
}

// size is the attachment's length as listed and served.
func (a *Attachment) size() int64 {
	if a.Content != nil {
		return int64(len(a.Content))
	}
	return a.Size
}

// Pattern returns the n bytes the fake serves for an attachment with nil
// Content and Size n; n should be small (it is for checking a prefix).
func Pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// Agent is a help-desk agent held by the fake.
type Agent struct {
	ID    int64
	Name  string
	Email string
}

// Ticket is a ticket held by the fake.
type Ticket struct {
	ID           int64 // 0 assigns one
	Subject      string
	Description  string // HTML
	Status       int    // 0 means 2 (open)
	Priority     int    // 0 means 1 (low)
	Requester    Contact
	CustomFields map[string]any // the keys are the fields the ticket accepts in updates
	Attachments  []Attachment
	CreatedAt    time.Time // zero means the server's clock
	UpdatedAt    time.Time
}

// Conversation is a reply or note held by the fake.
type Conversation struct {
	ID          int64 // 0 assigns one
	TicketID    int64
	Body        string // HTML
	Incoming    bool
	Private     bool
	UserID      int64
	Source      int // 0 email, 2 note
	FromEmail   string
	Attachments []Attachment
	CreatedAt   time.Time // zero means the server's clock
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Status int
}

// Server is an in-memory Freshdesk API v2 on a loopback httptest server.
// The caller must call Close when finished (NewServer does it through
// tb.Cleanup).
type Server struct {
	srv     *httptest.Server
	apiKey  string
	agentID int64
	now     func() time.Time
	expiry  time.Duration
	signKey []byte

	mu       sync.Mutex
	tickets  map[int64]*Ticket
	convs    map[int64][]*Conversation
	files    map[int64]*Attachment
	agents   map[int64]Agent
	nextID   int64
	nextConv int64
	nextFile int64
	epoch    int
	failNext []failure
	failWhen []func(*http.Request) (int, bool)
	latency  time.Duration
	requests []Request
	fields   map[string]TicketField

	limit       int       // credits per minute; <= 0 means no limit
	windowStart time.Time // start of the current minute
	used        int       // credits used in it
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// New starts a fake Freshdesk on 127.0.0.1. The caller must call Close.
func New(opts ...Option) *Server {
	s := &Server{
		apiKey:   DefaultAPIKey,
		agentID:  DefaultAgentID,
		now:      time.Now,
		expiry:   URLExpiry,
		signKey:  []byte("freshdesktest signing key"),
		tickets:  map[int64]*Ticket{},
		convs:    map[int64][]*Conversation{},
		files:    map[int64]*Attachment{},
		agents:   map[int64]Agent{},
		nextID:   4711,
		nextConv: 48009000001,
		nextFile: 48001234567,
		fields:   map[string]TicketField{},
		limit:    DefaultRateLimit,
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// NewServer starts a fake Freshdesk that tb.Cleanup closes.
func NewServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := New(opts...)
	tb.Cleanup(s.Close)
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// URL is the server's root, standing for https://<domain>.freshdesk.com.
func (s *Server) URL() string { return s.srv.URL }

// BaseURL is the API root, URL()+"/api/v2".
func (s *Server) BaseURL() string { return s.srv.URL + "/api/v2" }

// APIKey is the API key the server accepts.
func (s *Server) APIKey() string { return s.apiKey }

// AgentID is the user ID of the API key's agent.
func (s *Server) AgentID() int64 { return s.agentID }

// Config returns a freshdesk.Config for this server (BaseURL and APIKey set).
func (s *Server) Config() freshdesk.Config {
	return freshdesk.Config{BaseURL: s.BaseURL(), APIKey: freshdesk.Secret(s.apiKey)}
}

// Client returns a freshdesk.Client for this server.
func (s *Server) Client() *freshdesk.Client {
	c, err := freshdesk.New(s.Config())
	if err != nil {
		panic("freshdesktest: " + err.Error()) // cannot happen: the config is ours
	}
	return c
}

// AddTicket stores a ticket and returns it with IDs and times filled in.
func (s *Server) AddTicket(t Ticket) Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.ID == 0 {
		t.ID = s.nextID
	}
	if t.ID >= s.nextID {
		s.nextID = t.ID + 1
	}
	if t.Status == 0 {
		t.Status = 2
	}
	if t.Priority == 0 {
		t.Priority = 1
	}
	if t.Requester.ID == 0 {
		t.Requester.ID = 48000000001
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now().UTC().Truncate(time.Second)
	}
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = t.CreatedAt
	}
	t.CustomFields = cloneMap(t.CustomFields)
	for k, v := range t.CustomFields {
		if _, ok := s.fields[k]; !ok {
			s.fields[k] = TicketField{Name: k, Type: inferType(v)}
		}
	}
	t.Attachments = s.storeFiles(t.Attachments)
	cp := t
	s.tickets[t.ID] = &cp
	return cloneTicket(&cp)
}

// inferType is the type of a custom field that AddTicket meets without a
// declaration: it follows the value the ticket holds, and a nil value
// means a text field, Freshdesk's most common custom field.
func inferType(v any) FieldType {
	switch x := v.(type) {
	case bool:
		return FieldCheckbox
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return FieldNumber
	case float32:
		if float64(x) == math.Trunc(float64(x)) {
			return FieldNumber
		}
		return FieldDecimal
	case float64:
		if x == math.Trunc(x) {
			return FieldNumber
		}
		return FieldDecimal
	default:
		return FieldText
	}
}

// AddTicketField declares a custom ticket field's type, replacing an
// earlier declaration or the type AddTicket inferred. Updates that set the
// field to a value of another type answer 400 as Freshdesk does. Which
// tickets accept the field is still decided by their CustomFields keys.
func (s *Server) AddTicketField(f TicketField) TicketField {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Choices = slices.Clone(f.Choices)
	s.fields[f.Name] = f
	return f
}

// AddAgent stores an agent, served at GET /api/v2/agents/{id}.
func (s *Server) AddAgent(a Agent) Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.agents[a.ID] = a
	return a
}

// AddConversation stores a conversation on a ticket (which must exist) and
// returns it with IDs and times filled in.
func (s *Server) AddConversation(ticketID int64, c Conversation) Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addConversation(ticketID, c)
}

func (s *Server) addConversation(ticketID int64, c Conversation) Conversation {
	if _, ok := s.tickets[ticketID]; !ok {
		panic(fmt.Sprintf("freshdesktest: AddConversation: no ticket %d", ticketID))
	}
	c.TicketID = ticketID
	if c.ID == 0 {
		c.ID = s.nextConv
	}
	if c.ID >= s.nextConv {
		s.nextConv = c.ID + 1
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now().UTC().Truncate(time.Second)
	}
	c.Attachments = s.storeFiles(c.Attachments)
	cp := c
	s.convs[ticketID] = append(s.convs[ticketID], &cp)
	slices.SortStableFunc(s.convs[ticketID], func(a, b *Conversation) int {
		if x := a.CreatedAt.Compare(b.CreatedAt); x != 0 {
			return x
		}
		return int(a.ID - b.ID)
	})
	return cloneConv(&cp)
}

func (s *Server) storeFiles(in []Attachment) []Attachment {
	out := make([]Attachment, len(in))
	for i, a := range in {
		if a.ID == 0 {
			a.ID = s.nextFile
		}
		if a.ID >= s.nextFile {
			s.nextFile = a.ID + 1
		}
		if a.ContentType == "" {
			a.ContentType = "application/octet-stream"
		}
		cp := a
		s.files[a.ID] = &cp
		out[i] = a
	}
	return out
}

// Ticket returns a snapshot of a ticket.
func (s *Server) Ticket(id int64) (Ticket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[id]
	if !ok {
		return Ticket{}, false
	}
	return cloneTicket(t), true
}

// Conversations returns a snapshot of a ticket's conversations, oldest first.
func (s *Server) Conversations(ticketID int64) []Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Conversation
	for _, c := range s.convs[ticketID] {
		out = append(out, cloneConv(c))
	}
	return out
}

// DeleteConversations removes the ticket's conversations for which match
// returns true, as an agent deleting a note in Freshdesk does, and returns
// how many it removed.
func (s *Server) DeleteConversations(ticketID int64, match func(Conversation) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.convs[ticketID][:0]
	n := 0
	for _, c := range s.convs[ticketID] {
		if match(cloneConv(c)) {
			n++
			continue
		}
		kept = append(kept, c)
	}
	s.convs[ticketID] = kept
	return n
}

// Requests returns every request received so far (API calls and
// attachment downloads), in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// FailNext makes the next n API calls answer status with an empty JSON body.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, failure{status: status})
	}
}

// RateLimitNext makes the next n API calls answer 429 with Retry-After
// (whole seconds, rounded up).
func (s *Server) RateLimitNext(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, failure{status: http.StatusTooManyRequests, retryAfter: retryAfter})
	}
}

// FailWhen answers with the status f returns for every API call or download
// for which it returns ok. f runs without the server's lock, so it may call
// the server's methods (for example ExpireAttachmentURLs) and return false.
func (s *Server) FailWhen(f func(*http.Request) (status int, ok bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWhen = append(s.failWhen, f)
}

// SetLatency delays every answer (API calls and downloads) by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ExpireAttachmentURLs makes every attachment URL handed out so far answer
// 403, as a pre-signed URL does once it expired. URLs listed afterwards work.
func (s *Server) ExpireAttachmentURLs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
}

// ExpireAttachmentURLsAlways makes every attachment URL, old or new, answer
// 403, so that re-listing cannot help.
func (s *Server) ExpireAttachmentURLsAlways() {
	s.FailWhen(func(r *http.Request) (int, bool) {
		return http.StatusForbidden, strings.HasPrefix(r.URL.Path, "/s3/")
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	lat := s.latency
	s.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()})
	rec := &recorder{ResponseWriter: w, s: s, i: len(s.requests) - 1}
	s.mu.Unlock()
	s.route(rec, r)
}

// recorder notes the status in the recorded request before the answer is
// sent, so a client that has read the answer sees it in Requests.
type recorder struct {
	http.ResponseWriter
	s     *Server
	i     int
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.wrote = true
		r.s.mu.Lock()
		r.s.requests[r.i].Status = code
		r.s.mu.Unlock()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	preds := slices.Clone(s.failWhen)
	s.mu.Unlock()
	var inject *failure
	for _, f := range preds { // without the lock: a predicate may change the server's state
		if st, ok := f(r); ok {
			inject = &failure{status: st}
			break
		}
	}
	s.mu.Lock()
	if inject == nil && len(s.failNext) > 0 && strings.HasPrefix(r.URL.Path, "/api/v2/") {
		inject = &s.failNext[0]
		s.failNext = s.failNext[1:]
	}
	s.mu.Unlock()
	if inject != nil {
		if inject.status == http.StatusTooManyRequests {
			secs := int((inject.retryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			total := s.limit
			if total <= 0 {
				total = DefaultRateLimit
			}
			s.rateHeaders(w, total, 0, 1)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(inject.status)
		io.WriteString(w, "{}")
		return
	}
	if strings.HasPrefix(r.URL.Path, "/s3/") {
		s.serveAttachment(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/v2/") {
		http.NotFound(w, r)
		return
	}
	if user, _, ok := r.BasicAuth(); !ok || !hmac.Equal([]byte(user), []byte(s.apiKey)) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"code":    "invalid_credentials",
			"message": "You have to be logged in to perform this action.",
		})
		return
	}
	if !s.spend(w, r) {
		return
	}
	w.Header().Set("X-Freshdesk-API-Version", "latest=2; requested=2")

	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/v2/"), "/"), "/")
	if len(parts) == 2 && parts[0] == "agents" && r.Method == http.MethodGet {
		s.getAgent(w, parts[1])
		return
	}
	if len(parts) < 2 || parts[0] != "tickets" {
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "invalid_path", "message": "This API request is not supported"})
		return
	}
	id, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "invalid_path", "message": "This API request is not supported"})
		return
	}
	switch {
	case len(parts) == 2 && r.Method == http.MethodGet:
		s.getTicket(w, r, id)
	case len(parts) == 2 && r.Method == http.MethodPut:
		s.updateTicket(w, r, id)
	case len(parts) == 3 && parts[2] == "conversations" && r.Method == http.MethodGet:
		s.listConversations(w, r, id)
	case len(parts) == 3 && parts[2] == "notes" && r.Method == http.MethodPost:
		s.createNote(w, r, id)
	case len(parts) == 3 && parts[2] == "reply" && r.Method == http.MethodPost:
		s.createReply(w, r, id)
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"code": "method_not_allowed", "message": "Method not allowed"})
	}
}

func (s *Server) getAgent(w http.ResponseWriter, id string) {
	n, err := strconv.ParseInt(id, 10, 64)
	s.mu.Lock()
	a, ok := s.agents[n]
	s.mu.Unlock()
	if err != nil || !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	at := s.now().UTC().Truncate(time.Second)
	writeJSON(w, http.StatusOK, map[string]any{
		"available": true, "occasional": false, "id": a.ID, "signature": nil, "ticket_scope": 1,
		"created_at": at, "updated_at": at, "type": "support_agent",
		"contact": map[string]any{"active": true, "email": a.Email, "job_title": nil, "language": "en",
			"mobile": nil, "name": a.Name, "phone": nil, "time_zone": "UTC", "created_at": at, "updated_at": at},
	})
}

func (s *Server) rateHeaders(w http.ResponseWriter, total, remaining, used int) {
	w.Header().Set("X-RateLimit-Total", strconv.Itoa(total))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(remaining, 0)))
	w.Header().Set("X-RateLimit-Used-CurrentRequest", strconv.Itoa(used))
}

// cost is the API credits a call uses: two for a ticket with
// include=conversations, one otherwise.
func cost(r *http.Request) int {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/v2/"), "/"), "/")
	if r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "tickets" &&
		slices.Contains(strings.Split(r.URL.Query().Get("include"), ","), "conversations") {
		return 2
	}
	return 1
}

// spend takes the call's credits from the current minute and sets the
// X-RateLimit-* headers. When too few remain it answers 429 with
// Retry-After and returns false; the refused call uses no credits.
func (s *Server) spend(w http.ResponseWriter, r *http.Request) bool {
	c := cost(r)
	s.mu.Lock()
	if s.limit <= 0 {
		s.mu.Unlock()
		return true
	}
	now := s.now()
	if s.windowStart.IsZero() || !now.Before(s.windowStart.Add(time.Minute)) {
		s.windowStart, s.used = now, 0
	}
	total, ok := s.limit, s.used+c <= s.limit
	if ok {
		s.used += c
	}
	remaining, left := total-s.used, s.windowStart.Add(time.Minute).Sub(now)
	s.mu.Unlock()
	s.rateHeaders(w, total, remaining, c)
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((left+time.Second-1)/time.Second))))
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "You have exceeded the limit of requests per minute"})
	}
	return ok
}

func (s *Server) getTicket(w http.ResponseWriter, r *http.Request, id int64) {
	s.mu.Lock()
	t, ok := s.tickets[id]
	if !ok {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotFound) // Freshdesk answers an unknown ticket with an empty 404
		return
	}
	incl := strings.Split(r.URL.Query().Get("include"), ",")
	m := s.ticketJSON(r, t)
	if slices.Contains(incl, "requester") {
		m["requester"] = map[string]any{"id": t.Requester.ID, "name": t.Requester.Name, "email": t.Requester.Email, "mobile": nil, "phone": nil}
	}
	if slices.Contains(incl, "conversations") {
		var cs []map[string]any
		for i, c := range s.convs[id] {
			if i == 10 {
				break
			}
			cs = append(cs, s.convJSON(r, c))
		}
		m["conversations"] = cs
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) updateTicket(w http.ResponseWriter, r *http.Request, id int64) {
	var req struct {
		CustomFields map[string]any `json:"custom_fields"`
		Status       *int           `json:"status"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.UseNumber() // to tell 42 from 42.5 for custom_number
	if err := dec.Decode(&req); err != nil {
		validation(w, freshdesk.FieldError{Code: "invalid_json", Message: "Request body has invalid json format"})
		return
	}
	s.mu.Lock()
	t, ok := s.tickets[id]
	if !ok {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var bad []freshdesk.FieldError
	for k, v := range req.CustomFields {
		if _, ok := t.CustomFields[k]; !ok {
			bad = append(bad, freshdesk.FieldError{Field: k, Code: "invalid_field", Message: "Unexpected/invalid field in request"})
			continue
		}
		if fe, ok := checkField(s.fields[k], v); !ok {
			fe.Field = k
			bad = append(bad, fe)
			continue
		}
		req.CustomFields[k] = plain(v)
	}
	if req.Status != nil && (*req.Status < 2 || *req.Status > 5) {
		bad = append(bad, freshdesk.FieldError{Field: "status", Code: "invalid_value", Message: "It should be one of these values: '2,3,4,5'"})
	}
	if len(bad) > 0 {
		s.mu.Unlock()
		slices.SortFunc(bad, func(a, b freshdesk.FieldError) int { return strings.Compare(a.Field, b.Field) })
		validation(w, bad...)
		return
	}
	for k, v := range req.CustomFields {
		t.CustomFields[k] = v
	}
	if req.Status != nil {
		t.Status = *req.Status
	}
	t.UpdatedAt = s.now().UTC().Truncate(time.Second)
	m := s.ticketJSON(r, t)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, m)
}

// checkField checks a custom field's new value against its type as
// Freshdesk does; null clears any field.
func checkField(f TicketField, v any) (freshdesk.FieldError, bool) {
	if v == nil {
		return freshdesk.FieldError{}, true
	}
	mismatch := func(want string) (freshdesk.FieldError, bool) {
		return freshdesk.FieldError{Code: "datatype_mismatch", Message: fmt.Sprintf("Value set is of type %s.It should be a/an %s", jsonType(v), want)}, false
	}
	str, isStr := v.(string)
	switch f.Type {
	case FieldCheckbox:
		if _, ok := v.(bool); !ok {
			return mismatch("Boolean")
		}
	case FieldNumber:
		n, ok := v.(json.Number)
		if !ok {
			return mismatch("Integer")
		}
		if _, err := n.Int64(); err != nil {
			return mismatch("Integer")
		}
	case FieldDecimal:
		if _, ok := v.(json.Number); !ok {
			return mismatch("Number")
		}
	case FieldDate:
		if !isStr {
			return mismatch("String")
		}
		if _, err := time.Parse(time.DateOnly, str); err != nil {
			return freshdesk.FieldError{Code: "invalid_value", Message: "Value set is of type String.It should be in the 'yyyy-mm-dd' format"}, false
		}
	case FieldDropdown:
		if !isStr {
			return mismatch("String")
		}
		if len(f.Choices) > 0 && !slices.Contains(f.Choices, str) {
			return freshdesk.FieldError{Code: "invalid_value", Message: "It should be one of these values: '" + strings.Join(f.Choices, ",") + "'"}, false
		}
	case FieldParagraph:
		if !isStr {
			return mismatch("String")
		}
	default: // FieldText and fields inferred as text
		if !isStr {
			return mismatch("String")
		}
		if n := len([]rune(str)); n > 255 {
			return freshdesk.FieldError{Code: "invalid_value", Message: fmt.Sprintf("Has %d characters, it can have maximum of 255 characters", n)}, false
		}
	}
	return freshdesk.FieldError{}, true
}

// jsonType names a decoded JSON value's type as Freshdesk's messages do.
func jsonType(v any) string {
	switch x := v.(type) {
	case string:
		return "String"
	case bool:
		return "Boolean"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "Integer"
		}
		return "Number"
	case float64:
		return "Number"
	case []any:
		return "Array"
	case map[string]any:
		return "key/value pair"
	case nil:
		return "Null"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// plain turns json.Number into float64, the type encoding/json gives, so
// stored values look as they did before UseNumber.
func plain(v any) any {
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		return f
	}
	return v
}

func (s *Server) listConversations(w http.ResponseWriter, r *http.Request, id int64) {
	q := r.URL.Query()
	page, perPage := 1, 30
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			validation(w, freshdesk.FieldError{Field: "page", Code: "invalid_value", Message: "It should be a Positive Integer"})
			return
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			validation(w, freshdesk.FieldError{Field: "per_page", Code: "invalid_value", Message: "It should be a Positive Integer less than or equal to 100"})
			return
		}
		perPage = n
	}
	s.mu.Lock()
	if _, ok := s.tickets[id]; !ok {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		return
	}
	all := s.convs[id]
	lo := min((page-1)*perPage, len(all))
	hi := min(lo+perPage, len(all))
	out := make([]map[string]any, 0, hi-lo)
	for _, c := range all[lo:hi] {
		out = append(out, s.convJSON(r, c))
	}
	more := hi < len(all)
	s.mu.Unlock()
	if more {
		next := fmt.Sprintf("%s/api/v2/tickets/%d/conversations?per_page=%d&page=%d", origin(r), id, perPage, page+1)
		w.Header().Set("Link", "<"+next+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createNote(w http.ResponseWriter, r *http.Request, id int64) {
	s.mu.Lock()
	_, ok := s.tickets[id]
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	c := Conversation{Private: true, UserID: s.agentID, Source: 2}
	var bad []freshdesk.FieldError
	var notify []string
	hasBody := false
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		var req map[string]any
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.UseNumber()
		if err := dec.Decode(&req); err != nil {
			validation(w, freshdesk.FieldError{Code: "invalid_json", Message: "Request body has invalid json format"})
			return
		}
		for k, v := range req {
			var fe *freshdesk.FieldError
			switch k {
			case "body":
				if b, ok := v.(string); ok {
					c.Body, hasBody = b, b != ""
				} else {
					fe = mismatchOf(v, "String")
				}
			case "private", "incoming":
				b, ok := v.(bool)
				if !ok {
					fe = mismatchOf(v, "Boolean")
				} else if k == "private" {
					c.Private = b
				} else {
					c.Incoming = b
				}
			case "user_id":
				n, ok := v.(json.Number)
				uid, err := n.Int64()
				if !ok || err != nil || uid < 1 {
					fe = mismatchOf(v, "Positive Integer")
				} else {
					c.UserID = uid
					fe = s.checkUser(uid)
				}
			case "notify_emails":
				arr, ok := v.([]any)
				if !ok {
					fe = mismatchOf(v, "Array")
					break
				}
				for _, e := range arr {
					str, ok := e.(string)
					if !ok {
						fe = &freshdesk.FieldError{Code: "datatype_mismatch", Message: "It should contain elements of type String only"}
						break
					}
					notify = append(notify, str)
				}
				if fe == nil {
					fe = checkEmails(notify)
				}
			default:
				fe = &freshdesk.FieldError{Code: "invalid_field", Message: "Unexpected/invalid field in request"}
			}
			if fe != nil {
				fe.Field = k
				bad = append(bad, *fe)
			}
		}
	case "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			validation(w, freshdesk.FieldError{Code: "invalid_multipart", Message: err.Error()})
			return
		}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				validation(w, freshdesk.FieldError{Code: "invalid_multipart", Message: err.Error()})
				return
			}
			b, err := io.ReadAll(p)
			if err != nil {
				validation(w, freshdesk.FieldError{Code: "invalid_multipart", Message: err.Error()})
				return
			}
			name := strings.TrimSuffix(p.FormName(), "[]")
			var fe *freshdesk.FieldError
			switch p.FormName() {
			case "body":
				c.Body, hasBody = string(b), len(b) > 0
			case "private", "incoming":
				v, err := strconv.ParseBool(string(b))
				if err != nil || (string(b) != "true" && string(b) != "false") {
					fe = &freshdesk.FieldError{Code: "datatype_mismatch", Message: "Value set is of type String.It should be a/an Boolean"}
				} else if name == "private" {
					c.Private = v
				} else {
					c.Incoming = v
				}
			case "user_id":
				uid, err := strconv.ParseInt(string(b), 10, 64)
				if err != nil || uid < 1 {
					fe = &freshdesk.FieldError{Code: "datatype_mismatch", Message: "Value set is of type String.It should be a/an Positive Integer"}
				} else {
					c.UserID = uid
					fe = s.checkUser(uid)
				}
			case "notify_emails[]":
				notify = append(notify, string(b))
				fe = checkEmails([]string{string(b)})
			case "attachments[]":
				c.Attachments = append(c.Attachments, Attachment{Name: p.FileName(), ContentType: p.Header.Get("Content-Type"), Content: b})
			default:
				fe = &freshdesk.FieldError{Code: "invalid_field", Message: "Unexpected/invalid field in request"}
			}
			if fe != nil {
				fe.Field = name
				bad = append(bad, *fe)
			}
		}
	default:
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"code": "invalid_content_type", "message": "Content-Type header should have application/json or multipart/form-data"})
		return
	}
	if !hasBody && !slices.ContainsFunc(bad, func(fe freshdesk.FieldError) bool { return fe.Field == "body" }) {
		bad = append(bad, freshdesk.FieldError{Field: "body", Code: "missing_field", Message: "It should be a/an String"})
	}
	if len(bad) > 0 {
		slices.SortFunc(bad, func(a, b freshdesk.FieldError) int { return strings.Compare(a.Field, b.Field) })
		validation(w, bad...)
		return
	}
	s.mu.Lock()
	c = s.addConversation(id, c)
	m := s.convJSON(r, s.convs[id][slices.IndexFunc(s.convs[id], func(x *Conversation) bool { return x.ID == c.ID })])
	s.mu.Unlock()
	// The create-note answer carries fewer fields than a listed conversation.
	for _, k := range []string{"source", "category", "to_emails", "from_email", "cc_emails", "bcc_emails",
		"email_failure_count", "outgoing_failures", "last_edited_at", "last_edited_user_id"} {
		delete(m, k)
	}
	if notify == nil {
		notify = []string{}
	}
	m["notified_to"] = notify
	w.Header().Set("Location", fmt.Sprintf("%s/api/v2/conversations/%d", origin(r), c.ID))
	writeJSON(w, http.StatusCreated, m)
}

// mismatchOf is Freshdesk's datatype_mismatch error for value v.
func mismatchOf(v any, want string) *freshdesk.FieldError {
	return &freshdesk.FieldError{Code: "datatype_mismatch", Message: fmt.Sprintf("Value set is of type %s.It should be a/an %s", jsonType(v), want)}
}

// checkEmails refuses addresses that are not plain e-mail addresses.
func checkEmails(es []string) *freshdesk.FieldError {
	for _, e := range es {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			return &freshdesk.FieldError{Code: "invalid_value", Message: "It should contain elements that are in the format of valid email addresses"}
		}
	}
	return nil
}

// checkUser refuses a user_id that is neither the API key's agent, an
// agent added with AddAgent, nor the requester of a ticket held.
func (s *Server) checkUser(id int64) *freshdesk.FieldError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == s.agentID {
		return nil
	}
	if _, ok := s.agents[id]; ok {
		return nil
	}
	for _, t := range s.tickets {
		if t.Requester.ID == id {
			return nil
		}
	}
	return &freshdesk.FieldError{Code: "invalid_value", Message: "There is no contact matching the given user_id"}
}

// SupportEmail is the help desk's address that replies are sent from.
const SupportEmail = "support@acme.example"

// createReply answers POST /api/v2/tickets/{id}/reply (JSON body, required
// "body"): the reply is stored as an outgoing public conversation (source 0,
// email) of the API key's agent, sent from SupportEmail to the requester,
// and answered 201 with the reply's shape.
func (s *Server) createReply(w http.ResponseWriter, r *http.Request, id int64) {
	s.mu.Lock()
	t, ok := s.tickets[id]
	var requester string
	if ok {
		requester = t.Requester.Email
	}
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"code": "invalid_content_type", "message": "Content-Type header should have application/json or multipart/form-data"})
		return
	}
	var req struct {
		Body *string `json:"body"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		validation(w, freshdesk.FieldError{Code: "invalid_json", Message: "Request body has invalid json format"})
		return
	}
	if req.Body == nil || *req.Body == "" {
		validation(w, freshdesk.FieldError{Field: "body", Code: "missing_field", Message: "It should be a/an String"})
		return
	}
	s.mu.Lock()
	c := s.addConversation(id, Conversation{Body: *req.Body, UserID: s.agentID, Source: 0, FromEmail: SupportEmail})
	s.mu.Unlock()
	replied := []string{}
	if requester != "" {
		replied = append(replied, requester)
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"body_text": htmlText(c.Body), "body": c.Body, "id": c.ID, "user_id": c.UserID,
		"from_email": c.FromEmail, "cc_emails": []string{}, "bcc_emails": []string{}, "ticket_id": id,
		"replied_to": replied, "attachments": []any{}, "created_at": c.CreatedAt, "updated_at": c.CreatedAt,
	})
}

// serveAttachment serves /s3/{id}/{name}?X-Amz-Date=...&X-Amz-Expires=...&X-Amz-Signature=...
// like a pre-signed S3 URL: 403 once expired or re-signed, 400 when the
// request also carries an Authorization header.
func (s *Server) serveAttachment(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/s3/"), "/")
	id, err := strconv.ParseInt(parts[0], 10, 64)
	s.mu.Lock()
	a, ok := s.files[id]
	epoch := s.epoch
	s.mu.Unlock()
	if err != nil || !ok {
		s3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	if r.Header.Get("Authorization") != "" {
		s3Error(w, http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
		return
	}
	q := r.URL.Query()
	signed, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	secs, err2 := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || err2 != nil || !hmac.Equal([]byte(q.Get("X-Amz-Signature")), []byte(s.sign(id, q.Get("X-Amz-Date"), epoch))) {
		s3Error(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	if s.now().After(signed.Add(time.Duration(secs) * time.Second)) {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Request has expired")
		return
	}
	w.Header().Set("Content-Type", a.ContentType)
	w.Header().Set("Content-Length", strconv.FormatInt(a.size(), 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if a.Content != nil {
		_, _ = w.Write(a.Content)
		return
	}
	chunk := Pattern(251 * 128) // whole cycles, so chunks join seamlessly
	for left := a.Size; left > 0; {
		n := min(left, int64(len(chunk)))
		if _, err := w.Write(chunk[:n]); err != nil {
			return
		}
		left -= n
	}
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}

func (s *Server) sign(id int64, date string, epoch int) string {
	m := hmac.New(sha256.New, s.signKey)
	fmt.Fprintf(m, "%d|%s|%d", id, date, epoch)
	return hex.EncodeToString(m.Sum(nil))
}

// attachmentURL returns a freshly signed URL for a file. Callers hold s.mu.
func (s *Server) attachmentURL(r *http.Request, a *Attachment) string {
	date := s.now().UTC().Format("20060102T150405Z")
	q := url.Values{
		"response-content-type": {a.ContentType},
		"X-Amz-Algorithm":       {"AWS4-HMAC-SHA256"},
		"X-Amz-Date":            {date},
		"X-Amz-Expires":         {strconv.Itoa(int(s.expiry / time.Second))},
		"X-Amz-SignedHeaders":   {"host"},
		"X-Amz-Signature":       {s.sign(a.ID, date, s.epoch)},
	}
	return fmt.Sprintf("%s/s3/%d/%s?%s", origin(r), a.ID, url.PathEscape(a.Name), q.Encode())
}

func (s *Server) attachmentsJSON(r *http.Request, as []Attachment, created time.Time) []map[string]any {
	out := make([]map[string]any, 0, len(as))
	for _, a := range as {
		f := s.files[a.ID]
		out = append(out, map[string]any{
			"id":             f.ID,
			"name":           f.Name,
			"content_type":   f.ContentType,
			"size":           f.size(),
			"created_at":     created,
			"updated_at":     created,
			"attachment_url": s.attachmentURL(r, f),
		})
	}
	return out
}

func (s *Server) ticketJSON(r *http.Request, t *Ticket) map[string]any {
	return map[string]any{
		"cc_emails": []string{}, "fwd_emails": []string{}, "reply_cc_emails": []string{}, "ticket_cc_emails": []string{},
		"fr_escalated": false, "spam": false, "email_config_id": nil, "group_id": nil,
		"priority": t.Priority, "requester_id": t.Requester.ID, "responder_id": nil, "source": 1,
		"company_id": nil, "status": t.Status, "subject": t.Subject, "association_type": nil,
		"support_email": nil, "to_emails": nil, "product_id": nil, "id": t.ID, "type": nil,
		"due_by": t.CreatedAt.Add(72 * time.Hour), "fr_due_by": t.CreatedAt.Add(24 * time.Hour),
		"is_escalated": false, "description": t.Description, "description_text": htmlText(t.Description),
		"custom_fields": cloneMap(t.CustomFields), "created_at": t.CreatedAt, "updated_at": t.UpdatedAt,
		"tags": []string{}, "attachments": s.attachmentsJSON(r, t.Attachments, t.CreatedAt),
	}
}

func (s *Server) convJSON(r *http.Request, c *Conversation) map[string]any {
	var from any
	if c.FromEmail != "" {
		from = c.FromEmail
	}
	return map[string]any{
		"body_text": htmlText(c.Body), "body": c.Body, "id": c.ID, "incoming": c.Incoming, "private": c.Private,
		"user_id": c.UserID, "support_email": nil, "source": c.Source, "category": 2, "ticket_id": c.TicketID,
		"to_emails": nil, "from_email": from, "cc_emails": []string{}, "bcc_emails": nil,
		"email_failure_count": nil, "outgoing_failures": nil,
		"created_at": c.CreatedAt, "updated_at": c.CreatedAt,
		"attachments":    s.attachmentsJSON(r, c.Attachments, c.CreatedAt),
		"last_edited_at": nil, "last_edited_user_id": nil,
	}
}

// origin is the scheme and host the client used.
func origin(r *http.Request) string { return "http://" + r.Host }

func validation(w http.ResponseWriter, errs ...freshdesk.FieldError) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"description": "Validation failed", "errors": errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneTicket(t *Ticket) Ticket {
	c := *t
	c.CustomFields = cloneMap(t.CustomFields)
	c.Attachments = slices.Clone(t.Attachments)
	return c
}

func cloneConv(c *Conversation) Conversation {
	x := *c
	x.Attachments = slices.Clone(c.Attachments)
	return x
}
