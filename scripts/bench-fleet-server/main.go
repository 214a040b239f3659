// Command bench-fleet-server is the SSH server for make bench-fleet-fanout: a
// cheap golang.org/x/crypto/ssh server in its own process that stands in for
// a fleet of N hosts, so that a fan-out client (fleet-run, parallel-ssh, the
// bare x/crypto/ssh loop) can be measured on its own side. One OpenSSH sshd
// for all targets costs ~0.4 CPU-s per connection on a 2-core machine and
// makes every client tie; this server costs a few milliseconds per host.
//
// It listens on -n loopback addresses 127.1.0.0, 127.1.0.1, ... (all of
// 127.0.0.0/8 is routed to lo on Linux), all on the same -port, and writes
// the host:port list to -hosts-out and a matching known_hosts to
// -known-hosts-out once every listener is up (the caller waits for the
// hosts file to appear). It accepts the one public key in -authorized-key
// (and a password from -password-file when given), allows exec requests of
// the -cmd command only (default "uname -a"), and runs it with os/exec for
// every request (-exec each, the default) or once at start (-exec once).
// Every write to a client connection is delayed by -delay (20ms) to stand
// in for network latency; the delay sleeps, it costs no CPU.
//
// The key exchange, cipher and host-key type are fixed (curve25519-sha256,
// aes128-gcm@openssh.com, ssh-ed25519) so every client does the same work.
// It raises RLIMIT_NOFILE to two descriptors per address (soft up to the
// hard limit, as Go already does at start, and past it when privileged;
// it needs at least one per address and 1,024 more), stops by
// itself after -lifetime (or on SIGINT/SIGTERM), and then prints what it
// served and the CPU it used on stderr.
//
// Usage:
//
//	bench-fleet-server -n 1000 -port P -host-key F -authorized-key F.pub [-password-file F]
//	    -hosts-out F -known-hosts-out F [-delay 20ms] [-exec each|once] [-cmd "uname -a"] [-lifetime 30m]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-fleet-server:", err)
		os.Exit(1)
	}
}

type server struct {
	delay   time.Duration
	cmd     string
	cached  []byte // -exec once: the command's stdout
	cfg     *ssh.ServerConfig
	hostPub ssh.PublicKey
	conns   atomic.Int64 // accepted
	authed  atomic.Int64 // handshake and auth done
	execs   atomic.Int64 // exec requests answered
	failed  atomic.Int64 // handshakes that failed
	open    atomic.Int64 // connections open now
	maxOpen atomic.Int64 // most connections open at once
	writes  atomic.Int64 // delayed writes to clients
}

func run() error {
	n := flag.Int("n", 1000, "loopback addresses to listen on (127.1.0.0 onwards, at most 65536)")
	port := flag.Int("port", 0, "TCP port on every address (0: pick a free one)")
	hostKey := flag.String("host-key", "", "ed25519 host key file (OpenSSH private key)")
	authKey := flag.String("authorized-key", "", "the one public key accepted (authorized_keys line)")
	pwFile := flag.String("password-file", "", "also accept this password (first line of the file)")
	hostsOut := flag.String("hosts-out", "", "write host:port per line here once every listener is up")
	khOut := flag.String("known-hosts-out", "", "write a known_hosts file for every address here")
	delay := flag.Duration("delay", 20*time.Millisecond, "sleep before each write to a client connection")
	execMode := flag.String("exec", "each", "run -cmd for each exec request (each) or once at start (once)")
	cmd := flag.String("cmd", "uname -a", "the only command exec requests may run (split on spaces, no shell)")
	lifetime := flag.Duration("lifetime", 30*time.Minute, "stop after this long")
	flag.Parse()
	switch {
	case *n < 1 || *n > 65536:
		return errors.New("-n must be 1..65536")
	case *hostKey == "" || *authKey == "" || *hostsOut == "":
		return errors.New("-host-key, -authorized-key and -hosts-out are required")
	case *execMode != "each" && *execMode != "once":
		return errors.New("-exec must be each or once")
	case strings.TrimSpace(*cmd) == "":
		return errors.New("-cmd is empty")
	}
	nofile, err := raiseNofile(2*uint64(*n)+1024, uint64(*n)+1024)
	if err != nil {
		return err
	}
	s := &server{delay: *delay, cmd: *cmd}
	if s.cfg, s.hostPub, err = serverConfig(*hostKey, *authKey, *pwFile); err != nil {
		return err
	}
	if *execMode == "once" {
		if s.cached, err = exec.Command(strings.Fields(*cmd)[0], strings.Fields(*cmd)[1:]...).Output(); err != nil {
			return fmt.Errorf("running %q: %w", *cmd, err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()

	lns, err := listen(*n, *port)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	if err != nil {
		return err
	}
	*port = lns[0].Addr().(*net.TCPAddr).Port
	for _, ln := range lns {
		go s.serve(ln)
	}
	if err := s.writeLists(*n, *port, *hostsOut, *khOut); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench-fleet-server: %d listeners 127.1.0.0..127.1.%d.%d port %d, delay %v per write, exec %s %q, RLIMIT_NOFILE %d, stops in %v\n",
		*n, (*n-1)/256, (*n-1)%256, *port, *delay, *execMode, *cmd, nofile, *lifetime)

	<-ctx.Done()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ch syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ch)
	fmt.Fprintf(os.Stderr, "bench-fleet-server: stopping (%v): %d connections, %d authenticated, %d failed handshakes, %d exec, at most %d open at once, %.1f delayed writes per connection; CPU %.2fs (+%.2fs in commands), peak RSS %d MB\n",
		context.Cause(ctx), s.conns.Load(), s.authed.Load(), s.failed.Load(), s.execs.Load(), s.maxOpen.Load(), float64(s.writes.Load())/float64(max(1, s.conns.Load())),
		tv(ru.Utime)+tv(ru.Stime), tv(ch.Utime)+tv(ch.Stime), ru.Maxrss/1024)
	return nil
}

// listen opens n listeners, 127.1.0.0:port onwards, all on one port (a
// free one when port is 0). On error it returns those it opened, for the
// caller to close.
func listen(n, port int) ([]net.Listener, error) {
	lns := make([]net.Listener, 0, n)
	for i := range n {
		ln, err := net.Listen("tcp4", fmt.Sprintf("127.1.%d.%d:%d", i/256, i%256, port))
		if err != nil {
			return lns, fmt.Errorf("listener %d of %d: %w (all of 127.0.0.0/8 must route to lo)", i+1, n, err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		lns = append(lns, ln)
	}
	return lns, nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// raiseNofile raises the soft RLIMIT_NOFILE to want (a listener and a
// client connection for every address) when allowed, past the hard limit
// too when privileged; it fails when even need (the listeners and some
// room) does not fit. Go already raised the soft limit to the hard one at
// start (since 1.19). It returns the limit now in force.
func raiseNofile(want, need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(lim.Max, want)}) == nil {
		return want, nil
	}
	if lim.Cur < lim.Max && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim.Max, Max: lim.Max}) == nil {
		lim.Cur = lim.Max
	}
	if lim.Cur < need {
		return lim.Cur, fmt.Errorf("RLIMIT_NOFILE is %d (hard %d), %d needed (raise the hard limit: ulimit -Hn)", lim.Cur, lim.Max, need)
	}
	return lim.Cur, nil
}

func serverConfig(hostKeyFile, authKeyFile, pwFile string) (*ssh.ServerConfig, ssh.PublicKey, error) {
	b, err := os.ReadFile(hostKeyFile)
	if err != nil {
		return nil, nil, err
	}
	hk, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, nil, fmt.Errorf("host key: %w", err)
	}
	if hk.PublicKey().Type() != ssh.KeyAlgoED25519 {
		return nil, nil, fmt.Errorf("host key is %s, want ssh-ed25519", hk.PublicKey().Type())
	}
	b, err = os.ReadFile(authKeyFile)
	if err != nil {
		return nil, nil, err
	}
	ak, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, nil, fmt.Errorf("authorized key: %w", err)
	}
	want := ak.Marshal()
	cfg := &ssh.ServerConfig{
		Config: ssh.Config{
			KeyExchanges: []string{ssh.KeyExchangeCurve25519},
			Ciphers:      []string{ssh.CipherAES128GCM},
		},
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), want) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	if pwFile != "" {
		b, err := os.ReadFile(pwFile)
		if err != nil {
			return nil, nil, err
		}
		pw := strings.TrimRight(string(b), "\r\n")
		cfg.PasswordCallback = func(_ ssh.ConnMetadata, p []byte) (*ssh.Permissions, error) {
			if string(p) == pw {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	cfg.AddHostKey(hk)
	return cfg, hk.PublicKey(), nil
}

func (s *server) writeLists(n, port int, hostsOut, khOut string) error {
	var hosts, kh bytes.Buffer
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostPub)))
	for i := range n {
		fmt.Fprintf(&hosts, "127.1.%d.%d:%d\n", i/256, i%256, port)
		fmt.Fprintf(&kh, "[127.1.%d.%d]:%d %s\n", i/256, i%256, port, pub)
	}
	if khOut != "" {
		if err := writeAtomic(khOut, kh.Bytes()); err != nil {
			return err
		}
	}
	return writeAtomic(hostsOut, hosts.Bytes()) // last: its appearance says ready
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (s *server) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: back off, keep serving
			continue
		}
		go s.handle(c)
	}
}

// slowConn delays each write by d: a stand-in for the network latency
// between an operator's machine and a host.
type slowConn struct {
	net.Conn
	d      time.Duration
	writes *atomic.Int64
}

func (c slowConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	time.Sleep(c.d)
	return c.Conn.Write(p)
}

func (s *server) handle(c net.Conn) {
	defer c.Close()
	s.conns.Add(1)
	o := s.open.Add(1)
	defer s.open.Add(-1)
	for m := s.maxOpen.Load(); o > m && !s.maxOpen.CompareAndSwap(m, o); m = s.maxOpen.Load() {
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	var conn net.Conn = c
	if s.delay > 0 {
		conn = slowConn{c, s.delay, &s.writes}
	}
	sc, chans, reqs, err := ssh.NewServerConn(conn, s.cfg)
	if err != nil {
		s.failed.Add(1)
		return
	}
	defer sc.Close()
	s.authed.Add(1)
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go s.session(ch, creqs)
	}
}

func (s *server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(req.Type == "env", nil) // env is ignored; no pty, no shell
			continue
		}
		var p struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &p); err != nil {
			req.Reply(false, nil)
			continue
		}
		req.Reply(true, nil)
		s.execs.Add(1)
		status := s.exec(ch, p.Command)
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		ch.CloseWrite()
		return
	}
}

func (s *server) exec(ch ssh.Channel, command string) uint32 {
	if strings.Join(strings.Fields(command), " ") != strings.Join(strings.Fields(s.cmd), " ") {
		fmt.Fprintf(ch.Stderr(), "bench-fleet-server: only %q runs here\n", s.cmd)
		return 127
	}
	out := s.cached
	if out == nil {
		f := strings.Fields(s.cmd)
		var err error
		if out, err = exec.Command(f[0], f[1:]...).Output(); err != nil {
			fmt.Fprintln(ch.Stderr(), err)
			return 1
		}
	}
	ch.Write(out)
	return 0
}
