package freshdesk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opskit/opskit"
)

// Secret is opskit.Secret, the SDK's one credential type (an API key or a
// bearer token here). It never prints: fmt, slog and encoders show it as
// REDACTED. It is an alias, so freshdesk.Secret(s) and opskit.Secret(s) are
// the same value and either fills Config.APIKey and BridgeConfig.Token.
type Secret = opskit.Secret

// Config configures a Client. The zero value of each optional field selects
// the documented default.
type Config struct {
	// BaseURL is the API root, "https://<domain>.freshdesk.com/api/v2".
	// Required.
	BaseURL string
	// APIKey authenticates as HTTP basic-auth user with password "X".
	// Required.
	APIKey Secret
	// HTTPClient sends the requests; nil uses a client without an overall
	// timeout (calls are bounded by their context, and downloads stream).
	HTTPClient *http.Client
	// MaxRetries is how many times one call is retried after a 429.
	// 0 means 5; a negative value disables retries.
	MaxRetries int
	// MaxRetryWait is the longest Retry-After the client waits for. A 429
	// asking for longer is returned as a *RateLimitError. 0 means 1 minute.
	MaxRetryWait time.Duration
	// Wait sleeps for d or until ctx is done, returning ctx.Err() then.
	// nil uses a timer; tests inject a recorder.
	Wait func(ctx context.Context, d time.Duration) error
	// Logger receives retry events; nil discards.
	Logger *slog.Logger
}

// Client calls the Freshdesk API v2. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	key    Secret
	hc     *http.Client
	tries  int
	maxW   time.Duration
	wait   func(context.Context, time.Duration) error
	logger *slog.Logger
}

// ErrConfig is wrapped by the errors New returns for a bad Config.
var ErrConfig = errors.New("freshdesk: bad config")

// New returns a Client for cfg. It returns an error wrapping ErrConfig when
// BaseURL or APIKey is missing or BaseURL is not an http(s) URL.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("%w: APIKey is empty", ErrConfig)
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: BaseURL %q is not an http(s) URL", ErrConfig, cfg.BaseURL)
	}
	c := &Client{base: u, key: cfg.APIKey, hc: cfg.HTTPClient, maxW: cfg.MaxRetryWait, wait: cfg.Wait, logger: cfg.Logger}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	switch {
	case cfg.MaxRetries == 0:
		c.tries = 6
	case cfg.MaxRetries < 0:
		c.tries = 1
	default:
		c.tries = cfg.MaxRetries + 1
	}
	if c.maxW == 0 {
		c.maxW = time.Minute
	}
	if c.wait == nil {
		c.wait = sleep
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ticket returns the ticket with its requester (include=requester).
// An unknown ticket gives an error matching ErrNotFound; a wrong API key
// one matching ErrUnauthorized; both are *APIError.
func (c *Client) Ticket(ctx context.Context, id int64) (*Ticket, error) {
	u := c.endpoint(fmt.Sprintf("tickets/%d", id), url.Values{"include": {"requester"}})
	var t Ticket
	if _, err := c.do(ctx, http.MethodGet, u, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Agent returns an agent by user ID. An ID that is not an agent's gives an
// error matching ErrNotFound.
func (c *Client) Agent(ctx context.Context, id int64) (*Agent, error) {
	var a Agent
	if _, err := c.do(ctx, http.MethodGet, c.endpoint(fmt.Sprintf("agents/%d", id), nil), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Conversations returns every conversation of a ticket, oldest first as
// Freshdesk orders them, fetching 100 per page and following the Link header
// until it is absent. It refuses to follow a Link to another host.
func (c *Client) Conversations(ctx context.Context, ticketID int64) ([]Conversation, error) {
	next := c.endpoint(fmt.Sprintf("tickets/%d/conversations", ticketID), url.Values{"per_page": {"100"}})
	seen := map[string]bool{}
	var all []Conversation
	for next != nil {
		if seen[next.String()] {
			return nil, fmt.Errorf("freshdesk: %s: Link header loops back to a page already read", next.Path)
		}
		seen[next.String()] = true
		var page []Conversation
		h, err := c.do(ctx, http.MethodGet, next, nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		link := nextLink(h.Get("Link"))
		if link == "" || len(page) == 0 { // an empty page ends the list even if a Link follows
			break
		}
		nu, err := next.Parse(link)
		if err != nil {
			return nil, fmt.Errorf("freshdesk: %s: bad Link target %q: %v", next.Path, link, err)
		}
		if nu.Scheme != c.base.Scheme || nu.Host != c.base.Host {
			return nil, fmt.Errorf("freshdesk: %s: Link points to another host %q", next.Path, nu.Host)
		}
		next = nu
	}
	return all, nil
}

// OpenAttachment starts downloading an attachment of ticket ticketID (on the
// ticket itself or on one of its conversations) and returns the body as a
// stream, which the caller must close. The pre-signed URL is fetched without
// the Freshdesk credentials. If it answers 403 (it expired), the ticket and
// its conversations are listed again for a fresh URL and the download is
// tried once more; if that also answers 403 the error wraps
// ErrAttachmentExpired.
func (c *Client) OpenAttachment(ctx context.Context, ticketID int64, a Attachment) (io.ReadCloser, error) {
	body, status, err := c.download(ctx, a.AttachmentURL)
	if err != nil || status != http.StatusForbidden {
		return body, err
	}
	c.logger.LogAttrs(ctx, slog.LevelInfo, "attachment url expired, listing conversations again",
		slog.Int64("ticket", ticketID), slog.Int64("attachment", a.ID))
	fresh, err := c.findAttachment(ctx, ticketID, a.ID)
	if err != nil {
		return nil, err
	}
	body, status, err = c.download(ctx, fresh.AttachmentURL)
	if err != nil {
		return nil, err
	}
	if status == http.StatusForbidden {
		return nil, fmt.Errorf("%w: attachment %d (%s) of ticket %d", ErrAttachmentExpired, a.ID, a.Name, ticketID)
	}
	return body, nil
}

// findAttachment looks an attachment up again by ID.
func (c *Client) findAttachment(ctx context.Context, ticketID, id int64) (Attachment, error) {
	convs, err := c.Conversations(ctx, ticketID)
	if err != nil {
		return Attachment{}, err
	}
	for _, cv := range convs {
		for _, a := range cv.Attachments {
			if a.ID == id {
				return a, nil
			}
		}
	}
	t, err := c.Ticket(ctx, ticketID)
	if err != nil {
		return Attachment{}, err
	}
	for _, a := range t.Attachments {
		if a.ID == id {
			return a, nil
		}
	}
	return Attachment{}, fmt.Errorf("%w: attachment %d is no longer on ticket %d", ErrNotFound, id, ticketID)
}

// download GETs a pre-signed URL without credentials. It returns the body
// on 2xx, the status alone on 403, and an error otherwise.
func (c *Client) download(ctx context.Context, raw string) (io.ReadCloser, int, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, 0, fmt.Errorf("freshdesk: bad attachment url")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("freshdesk: attachment download: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("freshdesk: attachment download from %s: %w", u.Host, err)
	}
	switch {
	case resp.StatusCode/100 == 2:
		return resp.Body, resp.StatusCode, nil
	case resp.StatusCode == http.StatusForbidden:
		drain(resp.Body)
		return nil, resp.StatusCode, nil
	default:
		drain(resp.Body)
		return nil, resp.StatusCode, &APIError{Method: http.MethodGet, Path: u.Path, StatusCode: resp.StatusCode}
	}
}

// Note is a note to add to a ticket.
type Note struct {
	// Body is the note's HTML. Required.
	Body string
	// Public makes the note visible to the requester. The zero value
	// creates a private note.
	Public bool
	// NotifyEmails lists agents' addresses to notify.
	NotifyEmails []string
	// Attachments are sent as multipart "attachments[]" parts, streamed.
	Attachments []File
}

// File is an attachment to upload. Content is read once; if it is also an
// io.Seeker, a call rate-limited with 429 is retried after seeking back to
// the start, otherwise the 429 comes back as a *RateLimitError.
type File struct {
	Name        string
	ContentType string // "" means application/octet-stream
	Content     io.Reader
}

// CreateNote adds a note to a ticket and returns it as a Conversation.
// Without attachments the request is JSON; with attachments it is a
// streamed multipart form.
func (c *Client) CreateNote(ctx context.Context, ticketID int64, n Note) (*Conversation, error) {
	u := c.endpoint(fmt.Sprintf("tickets/%d/notes", ticketID), nil)
	var body func() (io.Reader, string, error)
	if len(n.Attachments) == 0 {
		b, err := json.Marshal(struct {
			Body         string   `json:"body"`
			Private      bool     `json:"private"`
			NotifyEmails []string `json:"notify_emails,omitempty"`
		}{n.Body, !n.Public, n.NotifyEmails})
		if err != nil {
			return nil, fmt.Errorf("freshdesk: encode note: %w", err)
		}
		body = func() (io.Reader, string, error) { return bytes.NewReader(b), "application/json", nil }
	} else {
		var finish func()
		body, finish = multipartNote(n)
		defer finish() // the files are not read after CreateNote returns
	}
	var cv Conversation
	if _, err := c.do(ctx, http.MethodPost, u, body, &cv); err != nil {
		return nil, err
	}
	return &cv, nil
}

// multipartNote returns a body function that streams the note as a
// multipart form through a pipe, and a function that stops the last writer.
// Each call after the first seeks the files back to their start, or fails if
// one cannot seek.
func multipartNote(n Note) (body func() (io.Reader, string, error), finish func()) {
	calls := 0
	var prev *io.PipeReader
	var prevDone chan struct{}
	finish = func() {
		if prev != nil {
			prev.CloseWithError(errNotReplayable)
			<-prevDone
		}
	}
	body = func() (io.Reader, string, error) {
		calls++
		if calls > 1 {
			// Stop the previous attempt's writer before touching the files.
			prev.CloseWithError(errNotReplayable)
			<-prevDone
			for _, f := range n.Attachments {
				s, ok := f.Content.(io.Seeker)
				if !ok {
					return nil, "", errNotReplayable
				}
				if _, err := s.Seek(0, io.SeekStart); err != nil {
					return nil, "", errNotReplayable
				}
			}
		}
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		done := make(chan struct{})
		go func() {
			defer close(done)
			pw.CloseWithError(writeNoteForm(mw, n))
		}()
		prev, prevDone = pr, done
		return pr, mw.FormDataContentType(), nil
	}
	return body, finish
}

var errNotReplayable = errors.New("freshdesk: request body cannot be sent again")

func writeNoteForm(mw *multipart.Writer, n Note) error {
	if err := mw.WriteField("body", n.Body); err != nil {
		return err
	}
	if err := mw.WriteField("private", strconv.FormatBool(!n.Public)); err != nil {
		return err
	}
	for _, e := range n.NotifyEmails {
		if err := mw.WriteField("notify_emails[]", e); err != nil {
			return err
		}
	}
	for _, f := range n.Attachments {
		ct := f.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="attachments[]"; filename="%s"`, quoteEscaper.Replace(f.Name)))
		h.Set("Content-Type", ct)
		w, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, f.Content); err != nil {
			return fmt.Errorf("freshdesk: read attachment %q: %w", f.Name, err)
		}
	}
	return mw.Close()
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"", "\r", "", "\n", "")

// UpdateCustomFields sets custom fields of a ticket (names carry the "cf_"
// prefix) and returns the updated ticket. Fields not named are left alone.
// An unknown field gives an *APIError with Code "invalid_field".
func (c *Client) UpdateCustomFields(ctx context.Context, ticketID int64, fields map[string]any) (*Ticket, error) {
	var t Ticket
	if err := c.doJSON(ctx, http.MethodPut, fmt.Sprintf("tickets/%d", ticketID), "custom fields", map[string]any{"custom_fields": fields}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Ticket statuses: Freshdesk's built-in values of a ticket's "status".
const (
	StatusOpen     = 2
	StatusPending  = 3
	StatusResolved = 4
	StatusClosed   = 5
)

// UpdateStatus sets a ticket's status (StatusOpen, StatusResolved, ... or a
// custom status's value) and returns the updated ticket. A value the help
// desk does not know gives an *APIError with Code "invalid_value".
func (c *Client) UpdateStatus(ctx context.Context, ticketID int64, status int) (*Ticket, error) {
	var t Ticket
	if err := c.doJSON(ctx, http.MethodPut, fmt.Sprintf("tickets/%d", ticketID), "status", map[string]any{"status": status}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Reply sends a public reply (HTML body) to the ticket's requester, from the
// help desk's support address, and returns it as a Conversation. An unknown
// ticket gives an error matching ErrNotFound.
func (c *Client) Reply(ctx context.Context, ticketID int64, body string) (*Conversation, error) {
	var cv Conversation
	if err := c.doJSON(ctx, http.MethodPost, fmt.Sprintf("tickets/%d/reply", ticketID), "reply", map[string]any{"body": body}, &cv); err != nil {
		return nil, err
	}
	return &cv, nil
}

// doJSON sends in, encoded as JSON, with method to the API path and decodes
// the answer into out; what names the body in an encoding error.
func (c *Client) doJSON(ctx context.Context, method, path, what string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("freshdesk: encode %s: %w", what, err)
	}
	body := func() (io.Reader, string, error) { return bytes.NewReader(b), "application/json", nil }
	_, err = c.do(ctx, method, c.endpoint(path, nil), body, out)
	return err
}

func (c *Client) endpoint(path string, q url.Values) *url.URL {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + "/" + path
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return &u
}

// do sends one API call, retrying 429 answers as Config allows, and decodes
// a 2xx JSON answer into out. body, when set, returns a fresh body for each
// attempt.
func (c *Client) do(ctx context.Context, method string, u *url.URL, body func() (io.Reader, string, error), out any) (http.Header, error) {
	var lastWait time.Duration
	for attempt := 1; ; attempt++ {
		var r io.Reader
		var ct string
		if body != nil {
			var err error
			if r, ct, err = body(); err != nil {
				if errors.Is(err, errNotReplayable) {
					return nil, &RateLimitError{Path: u.Path, RetryAfter: lastWait}
				}
				return nil, err
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
		if err != nil {
			return nil, fmt.Errorf("freshdesk: %s %s: %w", method, u.Path, err)
		}
		req.SetBasicAuth(c.key.Reveal(), "X")
		req.Header.Set("Accept", "application/json")
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			if pr, ok := r.(*io.PipeReader); ok {
				pr.CloseWithError(err)
			}
			return nil, fmt.Errorf("freshdesk: %s %s: %w", method, u.Path, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			drain(resp.Body)
			d := retryAfter(resp.Header.Get("Retry-After"), time.Now())
			if attempt >= c.tries || d > c.maxW {
				return nil, &RateLimitError{Path: u.Path, RetryAfter: d}
			}
			c.logger.LogAttrs(ctx, slog.LevelWarn, "freshdesk rate limit, waiting",
				slog.String("path", u.Path), slog.Duration("retry_after", d), slog.Int("attempt", attempt))
			if err := c.wait(ctx, d); err != nil {
				return nil, fmt.Errorf("freshdesk: %s %s: waiting out rate limit: %w", method, u.Path, err)
			}
			lastWait = d
			continue
		}
		if resp.StatusCode/100 != 2 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			drain(resp.Body)
			return nil, decodeAPIError(method, u.Path, resp.StatusCode, b)
		}
		defer resp.Body.Close()
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return nil, fmt.Errorf("freshdesk: %s %s: decode answer: %w", method, u.Path, err)
			}
		}
		return resp.Header, nil
	}
}

// retryAfter parses a Retry-After value (seconds or an HTTP date). A
// missing or unparsable value means one second.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
		return 0
	}
	return time.Second
}

func drain(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, maxErrorBody))
	rc.Close()
}
