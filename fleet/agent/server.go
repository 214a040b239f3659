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
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/internal/secret"
)

// errorBody is the JSON of an error response.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// errorCodes maps sentinel errors to their wire code and HTTP status. The
// client maps codes back, so errors.Is works across the API.
var errorCodes = []struct {
	err    error
	code   string
	status int
}{
	{ErrUnauthorized, "unauthorized", http.StatusUnauthorized},
	{ErrBusy, "busy", http.StatusConflict},
	{ErrZipBomb, "zip_bomb", http.StatusRequestEntityTooLarge},
	{ErrUnsafeArchive, "unsafe_archive", http.StatusBadRequest},
	{ErrBadArchive, "bad_archive", http.StatusBadRequest},
	{ErrTooLarge, "too_large", http.StatusRequestEntityTooLarge},
	{ErrBinaryNotFound, "binary_not_found", http.StatusUnprocessableEntity},
	{ErrStartFailed, "start_failed", http.StatusUnprocessableEntity},
	{ErrBadRequest, "bad_request", http.StatusBadRequest},
	{ErrNotFound, "not_found", http.StatusNotFound},
	{ErrNoStats, "no_stats", http.StatusServiceUnavailable},
}

// Handler returns the agent's HTTP API. When Config.Token is set, every
// request must carry it.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stats", a.handleStats)
	mux.HandleFunc("GET /v1/packages", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Packages())
	})
	mux.HandleFunc("POST /v1/packages/{name}", a.handleInstall)
	mux.HandleFunc("GET /v1/packages/{name}", func(w http.ResponseWriter, r *http.Request) {
		st, err := a.Status(r.PathValue("name"))
		a.reply(w, st, err)
	})
	mux.HandleFunc("POST /v1/packages/{name}/start", func(w http.ResponseWriter, r *http.Request) {
		st, err := a.Start(r.Context(), r.PathValue("name"))
		a.reply(w, st, err)
	})
	mux.HandleFunc("POST /v1/packages/{name}/stop", func(w http.ResponseWriter, r *http.Request) {
		st, err := a.Stop(r.Context(), r.PathValue("name"))
		a.reply(w, st, err)
	})
	mux.HandleFunc("GET /v1/packages/{name}/log", a.handleLog)
	mux.HandleFunc("GET /debug/vars", a.handleVars)
	if a.cfg.Metrics != nil {
		mux.Handle("GET /metrics", a.cfg.Metrics)
	}
	if a.cfg.Token == "" {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !secret.Equal(got, a.cfg.Token.Reveal()) {
			a.cfg.Logger.Warn("request with a missing or wrong token", "remote", r.RemoteAddr, "path", r.URL.Path)
			a.reply(w, nil, ErrUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (a *Agent) handleStats(w http.ResponseWriter, r *http.Request) {
	st := a.sampler.Stats()
	if st == nil {
		a.reply(w, nil, ErrNoStats)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *Agent) handleInstall(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	m := Manifest{Binary: q.Get("binary"), Args: q["arg"]}
	if r.ContentLength > a.cfg.MaxUpload {
		a.reply(w, nil, fmt.Errorf("%w: %d bytes declared, at most %d", ErrTooLarge, r.ContentLength, a.cfg.MaxUpload))
		return
	}
	body := http.MaxBytesReader(w, r.Body, a.cfg.MaxUpload)
	st, err := a.Install(r.Context(), r.PathValue("name"), body, m)
	a.reply(w, st, err)
}

func (a *Agent) handleLog(w http.ResponseWriter, r *http.Request) {
	if _, err := a.Status(r.PathValue("name")); err != nil {
		a.reply(w, nil, err)
		return
	}
	f, err := os.Open(filepath.Join(a.cfg.Dir, r.PathValue("name"), "output.log"))
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return // no output yet
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.Copy(w, f)
}

// handleVars serves expvar's format without using expvar's global
// registry: cmdline and memstats like expvar's defaults, plus the latest
// stats and the packages.
func (a *Agent) handleVars(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	vars := map[string]any{
		"cmdline":  os.Args,
		"memstats": &ms,
		"stats":    a.sampler.Stats(),
		"packages": a.Packages(),
	}
	writeJSON(w, http.StatusOK, vars)
}

// reply writes v as JSON, or err with its status code.
func (a *Agent) reply(w http.ResponseWriter, v any, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, v)
		return
	}
	status, code := http.StatusInternalServerError, "internal"
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			status, code = c.status, c.code
			break
		}
	}
	if errors.Is(err, context.Canceled) {
		status, code = 499, "canceled"
	}
	if status == http.StatusInternalServerError {
		a.cfg.Logger.Error("request failed", "err", err)
	}
	writeJSON(w, status, errorBody{Error: err.Error(), Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ListenConfig says where the agent listens.
type ListenConfig struct {
	// Network is "unix" (the default) or "tcp".
	Network string
	// Address is the socket path for unix, host:port for tcp.
	Address string
	// TLS, when set, serves TCP over TLS.
	TLS *tls.Config
	// Token is the Agent's Config.Token; TCP requires it or TLS.
	Token opskit.Secret
}

// Listen opens the agent's listener. A unix socket is created with mode
// 0600 (at a temporary name, chmodded, then renamed into place, so it is
// never reachable with wider permissions); a stale socket at the path
// (nothing accepts on it) is replaced, a live one is left alone and the
// error is ErrSocketInUse, anything else there is an error. TCP without a token or TLS
// is refused with ErrInsecureListen, before anything is opened: on a
// non-loopback address the API would be open to the network, and even on
// loopback to every local user. The caller must close the listener (which
// removes the socket).
func Listen(ctx context.Context, cfg ListenConfig) (net.Listener, error) {
	var lc net.ListenConfig
	switch cfg.Network {
	case "", "unix":
		return listenUnix(ctx, cfg.Address)
	case "tcp", "tcp4", "tcp6":
		if cfg.Token == "" && cfg.TLS == nil {
			scope := "loopback"
			if host, _, err := net.SplitHostPort(cfg.Address); err == nil {
				if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
					scope = "non-loopback"
				}
			}
			return nil, fmt.Errorf("%w (%s address %s)", ErrInsecureListen, scope, cfg.Address)
		}
		ln, err := lc.Listen(ctx, cfg.Network, cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		if cfg.TLS != nil {
			ln = &tlsListener{tls.NewListener(ln, cfg.TLS)}
		}
		return ln, nil
	default:
		return nil, fmt.Errorf("%w: network %q (want unix or tcp)", ErrBadRequest, cfg.Network)
	}
}

func listenUnix(ctx context.Context, path string) (net.Listener, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no socket path", ErrBadRequest)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("agent: %s exists and is not a socket", path)
		}
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "unix", path)
		switch {
		case err == nil:
			c.Close()
			return nil, fmt.Errorf("%w: %s", ErrSocketInUse, path)
		case !errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("agent: checking the existing socket %s: %w", path, err)
		}
		os.Remove(path) // a stale socket: nothing listens on it
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	os.Remove(tmp)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ul.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ul.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &unixListener{UnixListener: ul, path: path}, nil
}

// tlsListener marks a listener that Listen wrapped in TLS, so Serve knows
// a TCP listener without a token is still protected.
type tlsListener struct{ net.Listener }

type unixListener struct {
	*net.UnixListener
	path string
}

// Addr reports the socket's final path, not the temporary one.
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	os.Remove(l.path)
	return err
}

// Serve serves the API on ln and runs the stats sampler (unless another
// Serve of the same Agent already does) until ctx is done, then shuts the
// server down (waiting up to 5s for requests in flight) and returns ctx's
// error. It does not stop the programs: call Close.
//
// A TCP listener is refused with ErrInsecureListen unless Config.Token is
// set or ln came from Listen with TLS: the token given to Listen is only a
// promise, the Agent's is what requests are checked against.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	if ln.Addr().Network() != "unix" && a.cfg.Token == "" {
		if _, ok := ln.(*tlsListener); !ok {
			return fmt.Errorf("%w: %s listener %s and the agent has no Token", ErrInsecureListen, ln.Addr().Network(), ln.Addr())
		}
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.sampling.CompareAndSwap(false, true) {
		go func() {
			defer a.sampling.Store(false)
			a.sampler.Run(sctx)
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("agent: serve: %w", err)
	case <-ctx.Done():
	}
	shctx, c2 := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer c2()
	srv.Shutdown(shctx)
	return ctx.Err()
}
