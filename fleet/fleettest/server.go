package fleettest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/goterm/term"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/internal/secret"
)

// Config configures a Server. The zero value serves nobody: set Password,
// AuthorizedKeys or TrustedUserCAs.
type Config struct {
	// HostKey is the server's host key; nil generates an Ed25519 key.
	HostKey ssh.Signer
	// ExtraHostKeys are further host keys of other types, offered too.
	ExtraHostKeys []ssh.Signer
	// Password, when non-empty, is accepted for every user, by password
	// and by keyboard-interactive authentication. Convert a string with
	// opskit.Secret(s), or write a constant: Password: "pw".
	Password opskit.Secret
	// AuthorizedKeys are accepted public keys, for every user.
	AuthorizedKeys []ssh.PublicKey
	// TrustedUserCAs sign user certificates that are accepted.
	TrustedUserCAs []ssh.PublicKey
	// Handler serves exec and shell requests; nil means RunReal.
	Handler Handler
	// AllowStreamLocal serves direct-streamlocal@openssh.com channels (what
	// ssh.Client.Dial("unix", path) opens) by dialling the unix socket.
	AllowStreamLocal bool
	// AllowTCPForwarding serves direct-tcpip channels (jump hosts,
	// ssh.Client.Dial("tcp", addr)) by dialling the address.
	AllowTCPForwarding bool
	// Logger receives connection events; nil discards.
	Logger *slog.Logger
}

// Handler serves one exec or shell request and returns its exit status.
// It must return when ctx is done (the client closed the session or the
// server is closing).
type Handler func(ctx context.Context, s *Session) int

// Session is one exec or shell request as a Handler sees it.
type Session struct {
	User    string
	Command string // "" for a shell request
	PTY     bool   // a pty-req came first
	Term    string // TERM from the pty-req
	Env     map[string]string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// Record is one exec or shell request the server served.
type Record struct {
	User       string
	Command    string // "" for a shell
	PTY        bool
	ExitStatus int
}

// Failures are faults the server injects until they are changed.
type Failures struct {
	// RefuseAuth refuses every authentication attempt.
	RefuseAuth bool
	// DropMidCommand writes "partial\n" to the command's stdout and then
	// closes the TCP connection without an exit status.
	DropMidCommand bool
	// StallHandshake accepts TCP connections and never speaks SSH.
	StallHandshake bool
	// IgnoreRequests leaves global requests (keepalives) unanswered, as
	// a peer behind a broken network would.
	IgnoreRequests bool
}

// Server is an in-process SSH server on 127.0.0.1. The caller must call
// Close when finished (NewServer does it through tb.Cleanup).
type Server struct {
	cfg     Config
	ln      net.Listener
	hostKey ssh.Signer
	sshCfg  *ssh.ServerConfig
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	fail     Failures
	authKeys []ssh.PublicKey
	cas      []ssh.PublicKey
	records  []Record
	conns    map[net.Conn]struct{}
	accepts  int
}

// New starts a server on 127.0.0.1 with a free port.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, conns: map[net.Conn]struct{}{}, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.HostKey == nil {
		k, err := NewSigner()
		if err != nil {
			return nil, err
		}
		cfg.HostKey = k
	}
	s.hostKey = cfg.HostKey
	if s.cfg.Handler == nil {
		s.cfg.Handler = RunReal
	}
	s.sshCfg = &ssh.ServerConfig{}
	if cfg.Password != "" {
		s.sshCfg.PasswordCallback = func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if s.failures().RefuseAuth || !secret.Equal(string(pw), cfg.Password.Reveal()) {
				return nil, errors.New("fleettest: password refused")
			}
			return nil, nil
		}
		s.sshCfg.KeyboardInteractiveCallback = func(c ssh.ConnMetadata, ch ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			ans, err := ch(c.User(), "", []string{"Password: "}, []bool{false})
			if err != nil {
				return nil, err
			}
			if s.failures().RefuseAuth || len(ans) != 1 || !secret.Equal(ans[0], cfg.Password.Reveal()) {
				return nil, errors.New("fleettest: keyboard-interactive refused")
			}
			return nil, nil
		}
	}
	s.authKeys = append(s.authKeys, cfg.AuthorizedKeys...)
	s.cas = append(s.cas, cfg.TrustedUserCAs...)
	checker := &ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return containsKey(s.cas, auth)
		},
		UserKeyFallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if containsKey(s.authKeys, key) {
				return nil, nil
			}
			return nil, errors.New("fleettest: public key refused")
		},
	}
	s.sshCfg.PublicKeyCallback = func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if s.failures().RefuseAuth {
			return nil, errors.New("fleettest: public key refused")
		}
		return checker.Authenticate(c, key)
	}
	s.sshCfg.AddHostKey(cfg.HostKey)
	for _, k := range cfg.ExtraHostKeys {
		s.sshCfg.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fleettest: listen: %w", err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// NewServer starts a server for a test and closes it in tb.Cleanup.
func NewServer(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// NewSigner generates an Ed25519 key, for host keys and user keys.
func NewSigner() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// Addr returns the server's address, "127.0.0.1:port".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKey returns the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// KnownHostsLine returns the known_hosts line for the server's address
// and host key, with a trailing newline.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostKey()) + "\n"
}

// AddAuthorizedKey accepts one more public key, for every user.
func (s *Server) AddAuthorizedKey(k ssh.PublicKey) {
	s.mu.Lock()
	s.authKeys = append(s.authKeys, k)
	s.mu.Unlock()
}

// AddTrustedUserCA accepts user certificates signed by ca.
func (s *Server) AddTrustedUserCA(ca ssh.PublicKey) {
	s.mu.Lock()
	s.cas = append(s.cas, ca)
	s.mu.Unlock()
}

func containsKey(keys []ssh.PublicKey, k ssh.PublicKey) bool {
	for _, x := range keys {
		if bytes.Equal(x.Marshal(), k.Marshal()) {
			return true
		}
	}
	return false
}

// SetFailures replaces the injected faults.
func (s *Server) SetFailures(f Failures) {
	s.mu.Lock()
	s.fail = f
	s.mu.Unlock()
}

func (s *Server) failures() Failures {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail
}

// Commands returns the exec and shell requests served so far, in the
// order they finished.
func (s *Server) Commands() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Accepted returns the number of TCP connections accepted so far.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

// Open returns the number of connections open now.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops the server, drops every connection and waits for its
// goroutines.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.accepts++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handleConn(c)
		}()
	}
}

func (s *Server) handleConn(c net.Conn) {
	if s.failures().StallHandshake {
		<-s.ctx.Done()
		return
	}
	sc, chans, reqs, err := ssh.NewServerConn(c, s.sshCfg)
	if err != nil {
		s.log.Debug("handshake failed", "remote", c.RemoteAddr(), "err", err)
		return
	}
	defer sc.Close()
	go func() {
		for r := range reqs {
			if r.WantReply && !s.failures().IgnoreRequests {
				r.Reply(false, nil)
			}
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			wg.Add(1)
			go func() { defer wg.Done(); s.handleSession(c, sc, nc) }()
		case "direct-streamlocal@openssh.com":
			if !s.cfg.AllowStreamLocal {
				nc.Reject(ssh.Prohibited, "streamlocal forwarding disabled")
				continue
			}
			var p struct {
				Path      string
				Reserved0 string
				Reserved1 uint32
			}
			if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
				nc.Reject(ssh.ConnectionFailed, "bad payload")
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.forward(nc, "unix", p.Path) }()
		case "direct-tcpip":
			if !s.cfg.AllowTCPForwarding {
				nc.Reject(ssh.Prohibited, "tcp forwarding disabled")
				continue
			}
			var p struct {
				Host     string
				Port     uint32
				OrigHost string
				OrigPort uint32
			}
			if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
				nc.Reject(ssh.ConnectionFailed, "bad payload")
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.forward(nc, "tcp", net.JoinHostPort(p.Host, fmt.Sprint(p.Port)))
			}()
		default:
			nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}
}

func (s *Server) forward(nc ssh.NewChannel, network, addr string) {
	var d net.Dialer
	conn, err := d.DialContext(s.ctx, network, addr)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	defer conn.Close()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(conn, ch)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() { io.Copy(ch, conn); ch.CloseWrite(); done <- struct{}{} }()
	select {
	case <-done:
		<-done
	case <-s.ctx.Done():
	}
}

func (s *Server) handleSession(tcp net.Conn, sc *ssh.ServerConn, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	sess := &Session{User: sc.User(), Env: map[string]string{}, Stdin: ch, Stdout: ch, Stderr: ch.Stderr()}
	started := false
	done := make(chan int, 1)
	for {
		var r *ssh.Request
		select {
		case r = <-reqs:
		case code := <-done:
			s.finish(ch, sess, code)
			// Drain requests until the client closes the channel.
			go ssh.DiscardRequests(reqs)
			return
		}
		if r == nil {
			// The client closed the channel.
			cancel()
			if started {
				<-done
			}
			return
		}
		ok := false
		switch r.Type {
		case "pty-req":
			var p struct {
				Term          string
				Cols, Rows    uint32
				Width, Height uint32
				Modes         string
			}
			if ssh.Unmarshal(r.Payload, &p) == nil {
				sess.PTY, sess.Term, ok = true, p.Term, true
			}
		case "env":
			var p struct{ Name, Value string }
			if ssh.Unmarshal(r.Payload, &p) == nil {
				sess.Env[p.Name], ok = p.Value, true
			}
		case "window-change":
			ok = true
		case "signal":
			ok = true
			cancel()
		case "exec", "shell":
			if started {
				break
			}
			if r.Type == "exec" {
				var p struct{ Command string }
				if ssh.Unmarshal(r.Payload, &p) != nil {
					break
				}
				sess.Command = p.Command
			}
			ok, started = true, true
			if s.failures().DropMidCommand {
				r.Reply(true, nil)
				io.WriteString(ch, "partial\n")
				tcp.Close()
				return
			}
			go func() { done <- s.cfg.Handler(ctx, sess) }()
		}
		if r.WantReply {
			r.Reply(ok, nil)
		}
	}
}

func (s *Server) finish(ch ssh.Channel, sess *Session, code int) {
	s.mu.Lock()
	s.records = append(s.records, Record{User: sess.User, Command: sess.Command, PTY: sess.PTY, ExitStatus: code})
	s.mu.Unlock()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	ch.SendRequest("exit-status", false, b[:])
	ch.CloseWrite()
	ch.Close()
}

// RunReal is the Handler that runs the command for real with /bin/sh -c
// (a shell request runs /bin/sh reading commands from stdin), as the
// test process's user. After a pty-req it runs on a real pseudo-terminal
// in raw mode, as the session leader. It returns 127 when the shell cannot start and
// 128+n when the command is killed by signal n.
func RunReal(ctx context.Context, s *Session) int {
	args := []string{"/bin/sh"}
	if s.Command != "" {
		args = append(args, "-c", s.Command)
	}
	c := exec.CommandContext(ctx, args[0], args[1:]...)
	for k, v := range s.Env {
		c.Env = append(c.Environ(), k+"="+v)
	}
	// Kill the whole process group so that pipes close on cancel.
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = time.Second
	if s.PTY {
		return runOnPTY(c, s)
	}
	c.Stdout, c.Stderr = s.Stdout, s.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Copy stdin ourselves: Wait must not wait for a client that keeps
	// its side open after the command exited.
	in, err := c.StdinPipe()
	if err != nil {
		return 127
	}
	if err := c.Start(); err != nil {
		return 127
	}
	go func() { io.Copy(in, s.Stdin); in.Close() }()
	c.Wait()
	return exitStatus(c)
}

// runOnPTY runs c on a new pseudo-terminal in raw mode (no echo), as its
// session leader, like sshd after a pty-req: stdout and stderr are the
// terminal, and the program sees a tty.
func runOnPTY(c *exec.Cmd, s *Session) int {
	pty, err := term.OpenPTY()
	if err != nil {
		return 127
	}
	defer pty.Master.Close()
	var t term.Termios
	t.Raw()
	t.Set(pty.Slave)
	c.Stdin, c.Stdout, c.Stderr = pty.Slave, pty.Slave, pty.Slave
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	err = c.Start()
	pty.Slave.Close()
	if err != nil {
		return 127
	}
	go io.Copy(pty.Master, s.Stdin)
	copied := make(chan struct{})
	// Reading the master ends with EIO once no process holds the slave.
	go func() { io.Copy(s.Stdout, pty.Master); close(copied) }()
	c.Wait()
	select {
	case <-copied:
	case <-time.After(time.Second): // a background child kept the terminal
	}
	return exitStatus(c)
}

func exitStatus(c *exec.Cmd) int {
	if c.ProcessState == nil {
		return 127
	}
	if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return c.ProcessState.ExitCode()
}
