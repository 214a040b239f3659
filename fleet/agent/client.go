package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/opskit/opskit"
)

// DefaultSocket is where examples/agent listens by default.
const DefaultSocket = "/run/opskit-agent/agent.sock"

// DialFunc opens a connection to the agent; network and addr are those the
// HTTP transport asks for and may be ignored (a unix-socket dialler always
// reaches its one socket).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// ClientConfig configures a Client. The zero value of each field selects
// the documented default.
type ClientConfig struct {
	// Token is sent as "Authorization: Bearer TOKEN" when set; convert a
	// string with opskit.Secret(s).
	Token opskit.Secret
	// TLS configures HTTPS for an https:// URL.
	TLS *tls.Config
	// Dial, when set, opens every connection (NewSSHClient and
	// NewUnixClient set it).
	Dial DialFunc
}

// Client is a typed client of the agent's HTTP API. It is safe for
// concurrent use. Errors the agent returns match the package's Err values
// through errors.Is and are *APIError.
type Client struct {
	base  string
	where string // the agent in errors: its URL without credentials, or its socket
	token opskit.Secret
	hc    *http.Client
}

// APIError is an error response from the agent.
type APIError struct {
	Status  int    // HTTP status
	Code    string // the agent's error code, such as "busy"
	Message string // the agent's message
	// Agent names the agent: its base URL without user info,
	// "unix:/run/opskit-agent/agent.sock", or "web1 (ssh) unix:/run/...".
	Agent  string
	Method string // the request's method, e.g. "POST"
	// Path is the request's path, every query value (program arguments
	// among them) replaced by REDACTED.
	Path string
}

// Error names the agent, the request, the status and the agent's message,
// e.g. "agent: http://web1:7777: POST /v1/packages/app?binary=REDACTED: 409 Conflict: package app is busy".
func (e *APIError) Error() string {
	if e.Method == "" {
		return e.Message
	}
	msg := strings.TrimPrefix(e.Message, "agent: ")
	status := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if msg == "" {
		return fmt.Sprintf("agent: %s: %s %s: %s", e.Agent, e.Method, e.Path, status)
	}
	return fmt.Sprintf("agent: %s: %s %s: %s: %s", e.Agent, e.Method, e.Path, status, msg)
}

// redactURL returns raw without user info and with every query value
// replaced by REDACTED.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		pairs := strings.Split(u.RawQuery, "&")
		for i, p := range pairs {
			if k, _, ok := strings.Cut(p, "="); ok {
				pairs[i] = k + "=" + opskit.Redacted
			}
		}
		u.RawQuery = strings.Join(pairs, "&")
	}
	return u.String()
}

// Is matches the Err value that the agent's code stands for.
func (e *APIError) Is(target error) bool {
	for _, c := range errorCodes {
		if c.code == e.Code {
			return c.err == target
		}
	}
	return false
}

// NewClient returns a client of the agent at baseURL ("http://host:port" or
// "https://host:port").
func NewClient(baseURL string, cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: agent URL %q", ErrBadRequest, baseURL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = cfg.TLS
	if cfg.Dial != nil {
		tr.DialContext = cfg.Dial
	}
	base := strings.TrimSuffix(baseURL, "/")
	return &Client{base: base, where: redactURL(base), token: cfg.Token, hc: &http.Client{Transport: tr}}, nil
}

// NewUnixClient returns a client of the agent listening on the unix socket
// at path on this machine.
func NewUnixClient(path string, cfg ClientConfig) *Client {
	cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	c, _ := NewClient("http://agent", cfg) // a constant, valid URL
	c.where = "unix:" + path
	return c
}

// SSHClientFunc returns an SSH connection to a host; (*fleet.SSH).Client
// has this shape, so its pooled connections are used:
//
//	c := agent.NewSSHClient(ex.Client, "web1", agent.DefaultSocket, agent.ClientConfig{})
type SSHClientFunc func(ctx context.Context, host string) (*ssh.Client, error)

// NewSSHClient returns a client of the agent on host's unix socket at
// socketPath, reached through an SSH connection from conn
// (ssh.Client.DialContext("unix", socketPath), the direct-streamlocal
// channel of OpenSSH), so SSH authenticates and protects the traffic.
func NewSSHClient(conn SSHClientFunc, host, socketPath string, cfg ClientConfig) *Client {
	cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		sc, err := conn(ctx, host)
		if err != nil {
			return nil, err
		}
		c, err := sc.DialContext(ctx, "unix", socketPath)
		if err != nil {
			return nil, fmt.Errorf("agent: %s: dial %s over ssh: %w", host, socketPath, err)
		}
		return c, nil
	}
	c, _ := NewClient("http://agent", cfg)
	c.where = host + " (ssh) unix:" + socketPath
	return c
}

// Close closes the client's idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, size int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("agent: %s: %s %s: %w", c.where, method, redactURL(path), err)
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/zip")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("agent: %s: %s %s: %w", c.where, method, redactURL(path), ctx.Err())
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL may carry credentials; c.where names the agent
		}
		return fmt.Errorf("agent: %s: %s %s: %w", c.where, method, redactURL(path), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &eb) != nil {
			eb = errorBody{}
		}
		return &APIError{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error, Agent: c.where, Method: method, Path: redactURL(path)}
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
	} else {
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	if err != nil {
		return fmt.Errorf("agent: %s %s: reading the reply: %w", method, path, err)
	}
	return nil
}

// Stats returns the agent's latest stats (ErrNoStats before the first
// collection).
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var st Stats
	if err := c.do(ctx, http.MethodGet, "/v1/stats", nil, 0, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Vars returns the agent's /debug/vars, one raw JSON value per variable.
func (c *Client) Vars(ctx context.Context) (map[string]json.RawMessage, error) {
	var v map[string]json.RawMessage
	err := c.do(ctx, http.MethodGet, "/debug/vars", nil, 0, &v)
	return v, err
}

// Packages lists the installed packages.
func (c *Client) Packages(ctx context.Context) ([]Status, error) {
	var v []Status
	err := c.do(ctx, http.MethodGet, "/v1/packages", nil, 0, &v)
	return v, err
}

// Status reports one package (ErrNotFound when it is not installed).
func (c *Client) Status(ctx context.Context, name string) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/packages/"+url.PathEscape(name), nil, 0, &st)
	return st, err
}

// Start starts an installed package's program.
func (c *Client) Start(ctx context.Context, name string) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodPost, "/v1/packages/"+url.PathEscape(name)+"/start", nil, 0, &st)
	return st, err
}

// Stop stops a package's program.
func (c *Client) Stop(ctx context.Context, name string) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodPost, "/v1/packages/"+url.PathEscape(name)+"/stop", nil, 0, &st)
	return st, err
}

// Log copies a package's program output (the current log file) to w.
func (c *Client) Log(ctx context.Context, name string, w io.Writer) error {
	return c.do(ctx, http.MethodGet, "/v1/packages/"+url.PathEscape(name)+"/log", nil, 0, w)
}

// InstallOptions are optional inputs of Install.
type InstallOptions struct {
	// Progress, when set, is called with the bytes sent so far as the zip
	// streams out.
	Progress func(sent int64)
}

// Install streams the zip from r (size bytes; -1 if unknown) to the agent,
// which unpacks it as package name and starts m.Binary with m.Args. See
// Agent.Install for what the agent checks; its errors come back through
// errors.Is (ErrUnsafeArchive, ErrZipBomb, ErrBinaryNotFound, ErrBusy,
// ErrStartFailed, ...).
func (c *Client) Install(ctx context.Context, name string, r io.Reader, size int64, m Manifest, opt InstallOptions) (Status, error) {
	q := url.Values{"binary": {m.Binary}}
	for _, a := range m.Args {
		q.Add("arg", a)
	}
	body := r
	if opt.Progress != nil {
		body = &progressReader{r: r, fn: opt.Progress}
	}
	var st Status
	err := c.do(ctx, http.MethodPost, "/v1/packages/"+url.PathEscape(name)+"?"+q.Encode(), io.NopCloser(body), size, &st)
	return st, err
}

// InstallFile installs the zip file at path; see Install.
func (c *Client) InstallFile(ctx context.Context, name, path string, m Manifest, opt InstallOptions) (Status, error) {
	f, err := os.Open(path)
	if err != nil {
		return Status{}, fmt.Errorf("agent: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Status{}, fmt.Errorf("agent: %w", err)
	}
	return c.Install(ctx, name, f, fi.Size(), m, opt)
}

type progressReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if n > 0 {
		p.fn(p.n)
	}
	return n, err
}
