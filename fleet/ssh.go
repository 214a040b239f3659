package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// SSHConfig configures an SSH executor. The zero value of each optional
// field selects the documented default; build it in one literal.
type SSHConfig struct {
	// User is the login name on every host ("user@host" in a host name
	// overrides it).
	User string
	// Port is used for hosts given without a port; 0 means 22.
	Port int

	// KeyFiles are private key files (OpenSSH or PEM). A certificate
	// beside a key (KEY-cert.pub, as OpenSSH names it) is offered with it.
	KeyFiles []string
	// Passphrase is asked for the passphrase of an encrypted key file.
	// Nil means encrypted keys are an error.
	Passphrase func(keyFile string) ([]byte, error)
	// AgentSocket is the path of an ssh-agent socket (usually
	// $SSH_AUTH_SOCK); "" uses no agent.
	AgentSocket string
	// Password, when set, is asked for a password for user@host.
	Password func(user, host string) (string, error)
	// KeyboardInteractive, when set, answers keyboard-interactive challenges.
	KeyboardInteractive ssh.KeyboardInteractiveChallenge
	// Auth are further authentication methods, tried after the above.
	Auth []ssh.AuthMethod

	// KnownHostsFiles are the known_hosts files to verify host keys
	// against; nil means ~/.ssh/known_hosts. Files that do not exist are
	// treated as empty. The host-key algorithms offered to each host are
	// those of its known_hosts entries, so a host with an ed25519 entry
	// is not reported as changed because it first offered ECDSA.
	KnownHostsFiles []string
	// AcceptNewHostKeys records the key of a host that has no entry yet
	// in the first KnownHostsFiles file, under a file lock (OpenSSH's
	// StrictHostKeyChecking=accept-new). A changed key is still refused.
	AcceptNewHostKeys bool
	// InsecureIgnoreHostKey skips host-key verification entirely. Anyone
	// on the path can then read and change the traffic.
	InsecureIgnoreHostKey bool
	// HostKeyCallback, when set, replaces known_hosts verification.
	HostKeyCallback ssh.HostKeyCallback

	// Jump lists jump hosts ("[user@]host[:port]"), first hop first,
	// like ssh -J. Each hop's key is verified like the target's, and
	// each hop's connection is bounded by DialTimeout.
	Jump []string
	// DialTimeout bounds each hop's TCP connect, handshake and auth,
	// within the caller's context; 0 means 10s.
	DialTimeout time.Duration
	// ConnectRetries is how many times a transient connection failure is
	// retried: connection refused or reset, the server closing the
	// connection before the SSH handshake completed (as sshd does beyond
	// MaxStartups), or a hop's DialTimeout passing before it. Failures of
	// DNS, authentication or host keys are never retried, and neither is
	// anything once a session was opened, so a command never runs twice.
	// Retries wait with exponential backoff and jitter and stop when the
	// caller's context would end before the next attempt. 0 means no
	// retry. Result.ConnectRetries counts them.
	ConnectRetries int
	// ConnectRetryWait is the first wait between connection attempts,
	// doubled after each up to 5s, each wait drawn at random between half
	// and all of it; 0 means 250ms.
	ConnectRetryWait time.Duration
	// MaxSessions caps the sessions open at once on one connection
	// (sshd's MaxSessions); 0 means 10.
	MaxSessions int
	// KeepAlive is the interval of keepalive@openssh.com requests on idle
	// pooled connections; a connection that misses one is closed. 0 means
	// 30s; negative disables keepalives.
	KeepAlive time.Duration
	// KeyExchanges, Ciphers and MACs, when set, restrict the algorithms.
	KeyExchanges, Ciphers, MACs []string

	// ConfigFiles are OpenSSH client config files (ssh_config(5)), first
	// file first, as ssh -F FILE or DefaultConfigFiles(); nil reads none.
	// Files that do not exist are skipped. For each host the name as
	// given is looked up (Host patterns, Match host/user/all) for
	// HostName, Port, User, IdentityFile (tried after KeyFiles; missing
	// files skipped), ProxyJump (a comma-separated list; its hops are
	// looked up too, but not their own ProxyJump), StrictHostKeyChecking
	// (accept-new, and no, record new keys; a changed key is always
	// refused), UserKnownHostsFile, ConnectTimeout and
	// ServerAliveInterval. A "user@" or ":port" in the host, and the
	// explicit fields of this struct (User, Port, Jump, KnownHostsFiles,
	// AcceptNewHostKeys, DialTimeout, KeepAlive), win over the files.
	ConfigFiles []string

	// Logger receives connection events; nil discards.
	Logger *slog.Logger
}

// SSH runs commands over SSH, keeping one pooled connection per host and
// opening a session per command. It is safe for concurrent use.
// The caller must call Close when finished.
type SSH struct {
	cfg     SSHConfig
	given   SSHConfig // cfg as the caller gave it, before defaults
	log     *slog.Logger
	signers []ssh.Signer // from KeyFiles
	agentc  net.Conn
	agentK  agent.ExtendedAgent
	conf    sshConfigs // ConfigFiles, parsed

	confMu       sync.Mutex
	knownByFiles map[string]*knownHosts  // UserKnownHostsFile sets
	keyCache     map[string][]ssh.Signer // IdentityFile keys
	known        *knownHosts
	jumps        []target
	closeCh      chan struct{}

	mu     sync.Mutex
	pool   map[string]*hostConn
	closed bool
}

// target is one hop: whom to log in as, where, and what ssh_config says
// for it (zero values: the SSH executor's settings).
type target struct {
	user, addr  string
	keys        []string      // IdentityFile
	known       *knownHosts   // UserKnownHostsFile; nil: s.known
	acceptNew   bool          // StrictHostKeyChecking accept-new/no
	dialTimeout time.Duration // ConnectTimeout; 0: cfg.DialTimeout
	keepAlive   time.Duration // ServerAliveInterval; 0: cfg.KeepAlive
	jumps       []target      // ProxyJump; nil: cfg.Jump
}

type hostConn struct {
	lock     chan struct{} // held while dialling
	sessions chan struct{}
	client   *ssh.Client // guarded by lock
	closers  []*ssh.Client
}

// NewSSH checks cfg, loads the key files and known_hosts files, and
// connects to the agent socket. Nothing is dialled until Run. A Jump
// host that names no machine is an error matching ErrInvalidHost.
func NewSSH(cfg SSHConfig) (*SSH, error) {
	given := cfg
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = 10
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	s := &SSH{cfg: cfg, given: given, log: logger(cfg.Logger), pool: map[string]*hostConn{}, closeCh: make(chan struct{})}
	for _, f := range cfg.KeyFiles {
		sg, err := loadKey(f, cfg.Passphrase)
		if err != nil {
			return nil, err
		}
		s.signers = append(s.signers, sg...)
	}
	if len(cfg.ConfigFiles) > 0 {
		c, err := loadSSHConfigs(cfg.ConfigFiles)
		if err != nil {
			return nil, err
		}
		s.conf = c
	}
	if cfg.AgentSocket != "" {
		c, err := net.Dial("unix", cfg.AgentSocket)
		if err != nil {
			return nil, fmt.Errorf("fleet: ssh-agent: %w", err)
		}
		s.agentc = c
		s.agentK = agent.NewClient(c)
	}
	if len(s.signers) == 0 && s.agentK == nil && len(s.conf) == 0 && cfg.Password == nil && cfg.KeyboardInteractive == nil && len(cfg.Auth) == 0 {
		s.closeAgent()
		return nil, errors.New("fleet: ssh: no authentication method configured")
	}
	if !cfg.InsecureIgnoreHostKey && cfg.HostKeyCallback == nil {
		files := cfg.KnownHostsFiles
		if files == nil {
			home, err := os.UserHomeDir()
			if err != nil {
				s.closeAgent()
				return nil, fmt.Errorf("fleet: ssh: known_hosts: %w", err)
			}
			files = []string{filepath.Join(home, ".ssh", "known_hosts")}
		}
		k, err := newKnownHosts(files)
		if err != nil {
			s.closeAgent()
			return nil, err
		}
		s.known = k
	}
	if cfg.InsecureIgnoreHostKey {
		s.log.Warn("ssh host keys are not verified (InsecureIgnoreHostKey)")
	}
	for _, j := range cfg.Jump {
		t, err := s.parseTarget(j, 1)
		if err != nil {
			s.closeAgent()
			return nil, fmt.Errorf("fleet: ssh: jump host: %w", err)
		}
		s.jumps = append(s.jumps, t)
	}
	return s, nil
}

func (s *SSH) closeAgent() {
	if s.agentc != nil {
		s.agentc.Close()
	}
}

// loadKey reads a private key file and, when KEY-cert.pub exists, a
// certificate signer for it too.
func loadKey(path string, passphrase func(string) ([]byte, error)) ([]ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: ssh key: %w", err)
	}
	sg, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == nil {
			return nil, fmt.Errorf("fleet: ssh key %s: encrypted and no passphrase callback", path)
		}
		pw, perr := passphrase(path)
		if perr != nil {
			return nil, fmt.Errorf("fleet: ssh key %s: passphrase: %w", path, perr)
		}
		sg, err = ssh.ParsePrivateKeyWithPassphrase(pem, pw)
		clear(pw)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: ssh key %s: %v", path, err)
	}
	out := []ssh.Signer{sg}
	if b, err := os.ReadFile(strings.TrimSuffix(path, ".pub") + "-cert.pub"); err == nil {
		pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			return nil, fmt.Errorf("fleet: ssh certificate for %s: %v", path, err)
		}
		cert, ok := pub.(*ssh.Certificate)
		if !ok {
			return nil, fmt.Errorf("fleet: ssh certificate for %s: not a certificate", path)
		}
		cs, err := ssh.NewCertSigner(cert, sg)
		if err != nil {
			return nil, fmt.Errorf("fleet: ssh certificate for %s: %v", path, err)
		}
		out = []ssh.Signer{cs, sg}
	}
	return out, nil
}

// target parses "[user@]host[:port]"; a host that names no machine is a
// *HostError matching ErrInvalidHost.
func (s *SSH) target(h string) (target, error) { return s.parseTarget(h, 0) }

// parseTarget parses one hop; jumpDepth > 0 for a jump host, whose own
// ProxyJump is not followed.
func (s *SSH) parseTarget(h string, jumpDepth int) (target, error) {
	if err := CheckHost(h); err != nil {
		return target{}, err
	}
	t := target{user: s.cfg.User}
	userGiven := false
	if i := strings.LastIndex(h, "@"); i >= 0 {
		t.user, h, userGiven = h[:i], h[i+1:], true
	}
	if len(s.conf) > 0 {
		name, port := h, ""
		if hh, pp, err := net.SplitHostPort(h); err == nil {
			name, port = hh, pp
		}
		if err := s.resolve(strings.Trim(name, "[]"), port, userGiven, &t, jumpDepth); err != nil {
			return target{}, err
		}
		return t, nil
	}
	if _, _, err := net.SplitHostPort(h); err != nil {
		h = net.JoinHostPort(strings.Trim(h, "[]"), strconv.Itoa(s.cfg.Port))
	}
	t.addr = h
	return t, nil
}

// Close closes every pooled connection and the agent connection. Runs in
// flight fail.
func (s *SSH) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closeCh)
	pool := s.pool
	s.pool = map[string]*hostConn{}
	s.mu.Unlock()
	for _, hc := range pool {
		hc.lock <- struct{}{}
		hc.closeLocked()
		<-hc.lock
	}
	s.closeAgent()
	return nil
}

// CloseHost closes the pooled connection to host, if any, for a caller
// that will not run more commands there (fan-out over thousands of hosts
// need not keep thousands of connections open). Commands in flight on it
// fail with ErrUnreachable; a later Run dials again.
func (s *SSH) CloseHost(host string) {
	t, err := s.target(host)
	if err != nil {
		return // never pooled
	}
	s.mu.Lock()
	hc := s.pool[t.user+"@"+t.addr]
	delete(s.pool, t.user+"@"+t.addr)
	s.mu.Unlock()
	if hc == nil {
		return
	}
	select {
	case hc.lock <- struct{}{}:
	case <-s.closeCh:
		return
	}
	hc.closeLocked()
	<-hc.lock
}

func (hc *hostConn) closeLocked() {
	if hc.client != nil {
		hc.client.Close()
		hc.client = nil
	}
	for i := len(hc.closers) - 1; i >= 0; i-- {
		hc.closers[i].Close()
	}
	hc.closers = nil
}

func (s *SSH) entry(key string) (*hostConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("fleet: ssh executor closed")
	}
	hc := s.pool[key]
	if hc == nil {
		hc = &hostConn{lock: make(chan struct{}, 1), sessions: make(chan struct{}, s.cfg.MaxSessions)}
		s.pool[key] = hc
	}
	return hc, nil
}

// Client returns the pooled connection to host ("[user@]host[:port]"),
// dialling it if needed, for what Run does not cover, such as
// client.Dial("unix", path) to reach a socket on the host. The
// connection belongs to s: do not close it. A host that names no machine
// is refused with ErrInvalidHost.
func (s *SSH) Client(ctx context.Context, host string) (*ssh.Client, error) {
	t, err := s.target(host)
	if err != nil {
		return nil, err
	}
	c, _, err := s.client(ctx, host, t, nil)
	return c, err
}

// client returns the pooled connection to t, dialling it if needed; each
// retry of a transient failure is counted in *retries (if not nil).
func (s *SSH) client(ctx context.Context, host string, t target, retries *int) (*ssh.Client, *hostConn, error) {
	hc, err := s.entry(t.user + "@" + t.addr)
	if err != nil {
		return nil, nil, &HostError{Host: host, Kind: ErrUnreachable, Err: err}
	}
	select {
	case hc.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctxError(host, ctx)
	}
	defer func() { <-hc.lock }()
	if hc.client != nil {
		return hc.client, hc, nil
	}
	var via *ssh.Client
	var chain []*ssh.Client
	fail := func(err error) (*ssh.Client, *hostConn, error) {
		for i := len(chain) - 1; i >= 0; i-- {
			chain[i].Close()
		}
		return nil, nil, err
	}
	jumps := s.jumps
	if t.jumps != nil {
		jumps = t.jumps
	}
	for _, hop := range append(append([]target(nil), jumps...), t) {
		c, err := s.dialRetry(ctx, host, hop, via, retries)
		if err != nil {
			return fail(err)
		}
		chain = append(chain, c)
		via = c
	}
	hc.client = via
	hc.closers = chain[:len(chain)-1]
	s.log.Debug("ssh connected", "host", host, "addr", t.addr, "hops", len(chain))
	go s.watch(hc, via, cmp.Or(t.keepAlive, s.cfg.KeepAlive))
	return via, hc, nil
}

// watch keeps a pooled connection alive and forgets it when it dies.
func (s *SSH) watch(hc *hostConn, c *ssh.Client, keepAlive time.Duration) {
	dead := make(chan struct{})
	go func() { c.Wait(); close(dead) }()
	var tick <-chan time.Time
	if keepAlive > 0 {
		t := time.NewTicker(keepAlive)
		defer t.Stop()
		tick = t.C
	}
loop:
	for {
		select {
		case <-dead:
			break loop
		case <-s.closeCh:
			return
		case <-tick:
			reply := make(chan error, 1)
			go func() { _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); reply <- err }()
			select {
			case err := <-reply:
				if err == nil {
					continue
				}
			case <-time.After(keepAlive):
			case <-dead:
			}
			s.log.Info("ssh keepalive failed; closing connection", "addr", c.RemoteAddr().String())
			c.Close()
			<-dead
			break loop
		}
	}
	s.forget(hc, c)
}

func (s *SSH) forget(hc *hostConn, c *ssh.Client) {
	select {
	case hc.lock <- struct{}{}:
	case <-s.closeCh:
		return
	}
	if hc.client == c {
		hc.closeLocked()
	}
	<-hc.lock
}

// dialRetry dials one hop, retrying transient failures as
// SSHConfig.ConnectRetries says.
func (s *SSH) dialRetry(ctx context.Context, host string, hop target, via *ssh.Client, retries *int) (*ssh.Client, error) {
	wait := cmp.Or(s.cfg.ConnectRetryWait, 250*time.Millisecond)
	for attempt := 0; ; attempt++ {
		c, err := s.dial(ctx, host, hop, via)
		if err == nil || attempt >= s.cfg.ConnectRetries || !transient(err) || ctx.Err() != nil {
			return c, err
		}
		d := wait/2 + rand.N(wait/2+1)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return nil, err // no time left for another attempt
		}
		s.log.Info("ssh connect failed; retrying", "host", host, "addr", hop.addr, "attempt", attempt+1, "wait", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctxError(host, ctx)
		case <-t.C:
		}
		if retries != nil {
			*retries++
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// transient reports whether a dial error is worth retrying: refused,
// reset, closed before the handshake completed, or a hop's DialTimeout.
func transient(err error) bool {
	var he *HostError
	if !errors.As(err, &he) {
		return false
	}
	switch {
	case he.Kind == ErrTimeout:
		return true // only dialCtxError makes one while ctx is alive
	case he.Kind != ErrUnreachable:
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// dial opens one hop: TCP (directly or through via), handshake and auth,
// all bounded by ctx and DialTimeout; the connection is closed if the
// context ends first.
func (s *SSH) dial(ctx context.Context, host string, hop target, via *ssh.Client) (*ssh.Client, error) {
	hctx, cancel := context.WithTimeout(ctx, cmp.Or(hop.dialTimeout, s.cfg.DialTimeout))
	defer cancel()
	var conn net.Conn
	var err error
	if via == nil {
		var d net.Dialer
		conn, err = d.DialContext(hctx, "tcp", hop.addr)
	} else {
		conn, err = via.DialContext(hctx, "tcp", hop.addr)
	}
	if err != nil {
		if hctx.Err() != nil {
			return nil, s.dialCtxError(ctx, host, hop)
		}
		return nil, &HostError{Host: host, Kind: ErrUnreachable, Err: err}
	}
	stop := context.AfterFunc(hctx, func() { conn.Close() })
	var hkErr error
	cfg := &ssh.ClientConfig{
		User: hop.user,
		Auth: s.authFor(hop),
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			hkErr = s.checkHostKey(hop, hostname, remote, key)
			return hkErr
		},
		HostKeyAlgorithms: s.hostKeyAlgorithms(hop, hop.addr, conn.RemoteAddr()),
		Config: ssh.Config{
			KeyExchanges: s.cfg.KeyExchanges,
			Ciphers:      s.cfg.Ciphers,
			MACs:         s.cfg.MACs,
		},
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, hop.addr, cfg)
	if !stop() {
		if sc != nil {
			sc.Close()
		}
		conn.Close()
		return nil, s.dialCtxError(ctx, host, hop)
	}
	if err != nil {
		conn.Close()
		switch {
		case hkErr != nil:
			return nil, hkErr
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, &HostError{Host: host, Kind: ErrAuth, Err: err}
		}
		return nil, &HostError{Host: host, Kind: ErrUnreachable, Err: err}
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

func (s *SSH) dialCtxError(ctx context.Context, host string, hop target) error {
	if ctx.Err() != nil {
		return ctxError(host, ctx)
	}
	return &HostError{Host: host, Kind: ErrTimeout, Err: fmt.Errorf("connecting to %s took longer than %v: %w", hop.addr, cmp.Or(hop.dialTimeout, s.cfg.DialTimeout), context.DeadlineExceeded)}
}

// authFor returns the auth methods for one hop, in order: keys and
// agent, password, keyboard-interactive, then SSHConfig.Auth.
func (s *SSH) authFor(hop target) []ssh.AuthMethod {
	var out []ssh.AuthMethod
	// One publickey method: the client tries each method name once.
	if len(s.signers) > 0 || len(hop.keys) > 0 || s.agentK != nil {
		out = append(out, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			sg := append(append([]ssh.Signer(nil), s.signers...), s.keysFor(hop.keys)...)
			if s.agentK != nil {
				if as, err := s.agentK.Signers(); err == nil {
					sg = append(sg, as...)
				}
			}
			return sg, nil
		}))
	}
	if s.cfg.Password != nil {
		out = append(out, ssh.RetryableAuthMethod(ssh.PasswordCallback(func() (string, error) {
			return s.cfg.Password(hop.user, hop.addr)
		}), 1))
	}
	if s.cfg.KeyboardInteractive != nil {
		out = append(out, ssh.KeyboardInteractive(s.cfg.KeyboardInteractive))
	}
	return append(out, s.cfg.Auth...)
}

// Run runs cmd on cmd.Host over the pooled connection. One deadline, the
// context's, covers connecting, the handshake, auth and the command; when
// ctx ends the session is closed. A non-zero exit is a *ExitError returned
// with the Result; other failures are *HostError matching ErrUnreachable,
// ErrAuth, ErrHostKeyUnknown, ErrHostKeyChanged, ErrTimeout or
// context.Canceled. A cmd.Host that names no machine ("", "@", "user@")
// is refused with ErrInvalidHost before anything is dialled.
func (s *SSH) Run(ctx context.Context, cmd Command) (Result, error) {
	start := time.Now()
	res := Result{Host: cmd.Host, ExitCode: -1}
	if err := cmd.validate(); err != nil {
		return res, err
	}
	sess, c, release, err := s.session(ctx, cmd.Host, &res.ConnectRetries)
	if err != nil {
		res.Duration = time.Since(start)
		return res, err
	}
	out := &capWriter{max: cmd.maxOutput()}
	errw := &capWriter{max: cmd.maxOutput()}
	sess.Stdout, sess.Stderr, sess.Stdin = out, errw, cmd.Stdin
	line := cmd.String()
	var sr *sudoRun
	if cmd.Sudo != nil {
		sr = newSudoRun(cmd.Sudo, cmd.Host)
		sr.errOut, sr.cmdIn = errw, cmd.Stdin
		sess.Stdin = nil
		w, err := sess.StdinPipe()
		if err != nil {
			release()
			return res, &HostError{Host: cmd.Host, Kind: ErrUnreachable, Err: err}
		}
		sess.Stderr, sr.stdin = sr, w
		line = ShellQuote(sr.argv(cmd, true)...)
	}
	done := make(chan error, 1)
	go func() {
		if cmd.PTY {
			if err := sess.RequestPty("xterm", 40, 120, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
				done <- err
				return
			}
		}
		done <- sess.Run(line)
	}()
	select {
	case err = <-done:
		release()
	case <-ctx.Done():
		// Kill the command and return now. sshd may keep the channel open
		// until the command ends (it cannot signal it without privilege
		// separation), so the session is reaped in the background, and the
		// connection is dropped if that takes longer than 5s.
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		go s.reap(done, release, c)
		res.Duration = time.Since(start)
		res.Stdout, res.Stderr = out.snapshot(), errw.snapshot()
		return res, ctxError(cmd.Host, ctx)
	}
	var sudoErr error
	if sr != nil {
		sudoErr = sr.finish()
	}
	res.Duration = time.Since(start)
	res.Stdout, res.Stderr = out.buf, errw.buf
	res.StdoutTruncated, res.StderrTruncated = out.truncated, errw.truncated
	s.log.Debug("ssh command", "host", cmd.Host, "cmd", line, "err", err)
	if sudoErr != nil && ctx.Err() == nil {
		if res.ExitCode == -1 {
			res.ExitCode = 1
		}
		return res, sudoErr
	}
	if ctx.Err() != nil {
		return res, ctxError(cmd.Host, ctx)
	}
	var ee *ssh.ExitError
	switch {
	case err == nil:
		res.ExitCode = 0
		return res, nil
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
		if ee.Signal() != "" {
			res.ExitCode, res.Signal = -1, ee.Signal()
		}
		return res, exitError(res)
	}
	return res, &HostError{Host: cmd.Host, Kind: ErrUnreachable, Err: err}
}

// reap waits for a cancelled session to end, then frees its slot; after
// 5s it closes the connection, which ends the session.
func (s *SSH) reap(done <-chan error, release func(), c pooled) {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.forget(c.hc, c.client)
		<-done
	}
	release()
}

// pooled names a pooled connection.
type pooled struct {
	hc     *hostConn
	client *ssh.Client
}

// session opens a session on the pooled connection, holding one of the
// host's MaxSessions slots until release. A pooled connection that died
// is redialled once.
func (s *SSH) session(ctx context.Context, host string, retries *int) (*ssh.Session, pooled, func(), error) {
	t, err := s.target(host)
	if err != nil {
		return nil, pooled{}, nil, err
	}
	for attempt := 0; ; attempt++ {
		c, hc, err := s.client(ctx, host, t, retries)
		if err != nil {
			return nil, pooled{}, nil, err
		}
		select {
		case hc.sessions <- struct{}{}:
		case <-ctx.Done():
			return nil, pooled{}, nil, ctxError(host, ctx)
		}
		release := func() { <-hc.sessions }
		sess, err := c.NewSession()
		if err == nil {
			var once sync.Once
			return sess, pooled{hc, c}, func() { once.Do(func() { sess.Close(); release() }) }, nil
		}
		release()
		s.forget(hc, c)
		if attempt > 0 || ctx.Err() != nil {
			if ctx.Err() != nil {
				return nil, pooled{}, nil, ctxError(host, ctx)
			}
			return nil, pooled{}, nil, &HostError{Host: host, Kind: ErrUnreachable, Err: err}
		}
	}
}
