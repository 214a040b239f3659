package agent

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/internal/atomicfile"
)

// Defaults of Config.
const (
	DefaultMaxUpload   = 1 << 30 // 1 GiB
	DefaultMaxLog      = 1 << 20 // 1 MiB per log file, two files kept
	DefaultStartGrace  = time.Second
	DefaultBackoffMin  = 100 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
	DefaultStopTimeout = 10 * time.Second
)

// Config configures an Agent. Dir is required; the zero value of every other
// field selects the documented default.
type Config struct {
	// Dir holds the packages: DIR/NAME/releases/ID (unpacked versions),
	// DIR/NAME/current (a symlink to the running one) and
	// DIR/NAME/output.log. It is created with mode 0700.
	Dir string
	// Limits caps what an archive may unpack to.
	Limits Limits
	// MaxUpload caps the zip's size in bytes; 0 means DefaultMaxUpload.
	MaxUpload int64
	// MaxLog caps each program's output log; 0 means DefaultMaxLog.
	MaxLog int64
	// StartGrace is how long a newly installed program must keep running
	// for the install to succeed; 0 means DefaultStartGrace.
	StartGrace time.Duration
	// BackoffMin and BackoffMax bound the wait before restarting a
	// program that exited; it doubles on each crash and resets after a
	// run longer than BackoffMax. 0 means DefaultBackoffMin/Max.
	BackoffMin, BackoffMax time.Duration
	// StopTimeout is how long a program has to exit after SIGTERM before
	// SIGKILL; 0 means DefaultStopTimeout.
	StopTimeout time.Duration
	// Token, when set, is required on every HTTP request as
	// "Authorization: Bearer TOKEN", compared in constant time. Listen
	// requires it (or TLS) for TCP. Convert a string with opskit.Secret(s),
	// or read one with opskit.SecretFromFileOrEnv.
	Token opskit.Secret
	// Sampler provides GET /v1/stats; nil means a Sampler collecting this
	// host every DefaultInterval (Serve runs it).
	Sampler *Sampler
	// OnEvent, when set, is called for every Event (from the supervising
	// goroutines: it must not block).
	OnEvent func(Event)
	// Logger receives events an operator can act on; nil discards.
	Logger *slog.Logger
	// Metrics, when set, serves GET /metrics on the API (behind Token
	// like every route): typically promhttp.HandlerFor over a registry
	// holding agentmetrics.New(agent). This package itself does not import
	// Prometheus (whose client registers expvar's /debug/vars on
	// http.DefaultServeMux).
	Metrics http.Handler
}

// Manifest says how to run a package.
type Manifest struct {
	// Binary is the program: a path inside the package (bin/app), or an
	// absolute path of a program on the host. It must be an executable
	// file.
	Binary string `json:"binary"`
	// Args are its arguments, passed as they are (no shell).
	Args []string `json:"args,omitempty"`
}

// Status is a package's state.
type Status struct {
	Name     string   `json:"name"`
	Release  string   `json:"release,omitempty"` // the installed version's directory name
	Binary   string   `json:"binary,omitempty"`
	Args     []string `json:"args,omitempty"`
	Running  bool     `json:"running"`
	Pid      int      `json:"pid,omitempty"`
	Restarts int      `json:"restarts"`
	LastExit string   `json:"last_exit,omitempty"` // "exit status 1", "signal: killed", an exec error
	// StartedAt is when the current run began; zero when not running.
	StartedAt time.Time `json:"started_at,omitzero"`
}

// Agent installs and supervises packages and serves the HTTP API. It is safe
// for concurrent use. The caller must call Close when finished: it stops
// every program.
type Agent struct {
	cfg     Config
	sampler *Sampler
	// sampling is set while a Serve runs the sampler, so several Serve
	// calls (a socket and a TCP port) share one collection loop.
	sampling atomic.Bool

	mu   sync.Mutex
	pkgs map[string]*pkg

	lock      *os.File // DIR/.lock, flocked until Close
	closeOnce sync.Once
}

type pkg struct {
	name string
	dir  string
	// op serialises installs, starts and stops; an install that finds it
	// held returns ErrBusy rather than queueing.
	op sync.Mutex

	mu       sync.Mutex // guards the fields below
	release  string
	manifest Manifest
	proc     *proc
	log      *cappedLog
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// New returns an Agent over cfg.Dir, which it creates if needed, and locks
// it (flock on DIR/.lock, released by Close or the process's death): while
// another agent holds it, New returns ErrDirLocked and touches nothing.
// Packages already installed there are known (stopped); Resume starts those
// that were running. What a previous agent killed without Close left
// behind is cleaned first: half uploads and staging directories are
// removed, and programs it left running (found through their pidfiles,
// checked by pid, process group and start time) are stopped, SIGTERM then
// SIGKILL after StopTimeout, each reported as EventOrphanStopped.
func New(cfg Config) (*Agent, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: Config.Dir is required", ErrBadRequest)
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	if cfg.MaxLog <= 0 {
		cfg.MaxLog = DefaultMaxLog
	}
	if cfg.StartGrace <= 0 {
		cfg.StartGrace = DefaultStartGrace
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	a := &Agent{cfg: cfg, sampler: cfg.Sampler, pkgs: map[string]*pkg{}}
	if a.sampler == nil {
		a.sampler = NewSampler(SamplerConfig{Logger: cfg.Logger})
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	a.lock = lock
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	cleanStale(cfg.Dir, func(p string) { cfg.Logger.Info("removed what a crashed agent left", "path", p) })
	a.stopOrphans()
	for _, e := range ents {
		if !e.IsDir() || !validName.MatchString(e.Name()) {
			continue
		}
		p := a.newPkg(e.Name())
		rel, err := os.Readlink(filepath.Join(p.dir, "current"))
		if err != nil {
			continue
		}
		id := filepath.Base(rel)
		m, err := readManifest(p.dir, id)
		if err != nil {
			cfg.Logger.Warn("skipping package with unreadable manifest", "package", p.name, "err", err)
			continue
		}
		p.release, p.manifest = id, m
		a.pkgs[p.name] = p
	}
	return a, nil
}

// Sampler returns the agent's stats sampler.
func (a *Agent) Sampler() *Sampler { return a.sampler }

func (a *Agent) newPkg(name string) *pkg {
	return &pkg{name: name, dir: filepath.Join(a.cfg.Dir, name)}
}

func (a *Agent) emit(e Event) {
	a.cfg.OnEvent(e)
	switch e.Kind {
	case EventExited:
		a.cfg.Logger.Warn("program exited; restarting", "package", e.Package, "exit", e.Exit, "restarts", e.Restarts)
	case EventRolledBack:
		a.cfg.Logger.Error("new version failed to start; rolled back", "package", e.Package)
	}
}

// lookup returns the package, creating its entry when create is set.
func (a *Agent) lookup(name string, create bool) (*pkg, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("%w: package name %q (want [A-Za-z0-9][A-Za-z0-9._-]*, at most 64)", ErrBadRequest, name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pkgs[name]
	if p == nil {
		if !create {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		p = a.newPkg(name)
		a.pkgs[name] = p
	}
	return p, nil
}

// Install streams the zip in body to a temporary file (at most MaxUpload
// bytes; nothing is held in memory), unpacks it into a staging directory
// with Extract, checks that m.Binary is an executable file, then stops the
// running version, swaps the new one in (an atomic symlink rename) and starts
// it. If the new version cannot start or exits within StartGrace, the
// previous one is swapped back and restarted, and the error is a
// *StartError (ErrStartFailed).
//
// Errors: ErrBusy while another install, start or stop of name runs;
// ErrBadRequest for a bad name or manifest; ErrTooLarge; ErrBadArchive for a
// truncated or corrupt zip; *ArchiveError (ErrUnsafeArchive, ErrZipBomb);
// ErrBinaryNotFound. On all of these the installed version is untouched.
func (a *Agent) Install(ctx context.Context, name string, body io.Reader, m Manifest) (Status, error) {
	if err := checkManifest(m); err != nil {
		return Status{}, err
	}
	p, err := a.lockForInstall(name)
	if err != nil {
		return Status{}, err
	}
	defer p.op.Unlock()
	defer a.forgetIfEmpty(p)

	id, err := a.stage(ctx, p, body, m)
	if err != nil {
		return Status{}, err
	}
	if err := a.swap(ctx, p, id, m); err != nil {
		return p.status(), err
	}
	a.emit(Event{Package: name, Kind: EventInstalled})
	return p.status(), nil
}

// lockForInstall returns name's package entry with its op lock held, or
// ErrBusy.
func (a *Agent) lockForInstall(name string) (*pkg, error) {
	for {
		p, err := a.lookup(name, true)
		if err != nil {
			return nil, err
		}
		if !p.op.TryLock() {
			return nil, fmt.Errorf("%w: package %s is being installed, started or stopped", ErrBusy, name)
		}
		a.mu.Lock()
		current := a.pkgs[name] == p
		a.mu.Unlock()
		if current {
			return p, nil
		}
		// A failed first install dropped this entry meanwhile; take the new one.
		p.op.Unlock()
	}
}

func checkManifest(m Manifest) error {
	switch {
	case m.Binary == "":
		return fmt.Errorf("%w: the manifest names no binary", ErrBadRequest)
	case !filepath.IsAbs(m.Binary) && !filepath.IsLocal(m.Binary):
		return fmt.Errorf("%w: binary %q is neither inside the package nor absolute", ErrBadRequest, m.Binary)
	}
	return nil
}

// forgetIfEmpty drops the entry of a package whose first install failed.
func (a *Agent) forgetIfEmpty(p *pkg) {
	p.mu.Lock()
	empty := p.release == ""
	if empty && p.log != nil {
		p.log.Close()
		p.log = nil
	}
	p.mu.Unlock()
	if !empty {
		return
	}
	a.mu.Lock()
	if a.pkgs[p.name] == p {
		delete(a.pkgs, p.name)
	}
	a.mu.Unlock()
	os.RemoveAll(p.dir)
}

// stage uploads and unpacks into DIR/NAME/releases/ID and returns ID.
func (a *Agent) stage(ctx context.Context, p *pkg, body io.Reader, m Manifest) (string, error) {
	releases := filepath.Join(p.dir, "releases")
	if err := os.MkdirAll(releases, 0o700); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	tmp, err := os.CreateTemp(p.dir, ".upload-*.zip")
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(&ctxReader{ctx, body}, a.cfg.MaxUpload+1))
	var mbe *http.MaxBytesError
	switch {
	case n > a.cfg.MaxUpload || errors.As(err, &mbe):
		return "", fmt.Errorf("%w: more than %d bytes", ErrTooLarge, a.cfg.MaxUpload)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "", fmt.Errorf("%w: truncated upload after %d bytes", ErrBadArchive, n)
	case ctx.Err() != nil:
		return "", ctx.Err()
	case err != nil:
		return "", fmt.Errorf("agent: receiving the package: %w", err)
	}
	zr, err := zip.NewReader(tmp, n)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadArchive, err)
	}
	staging, err := os.MkdirTemp(releases, ".staging-")
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staging)
		}
	}()
	root, err := os.OpenRoot(staging)
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	err = Extract(ctx, zr, root, a.cfg.Limits)
	if err == nil {
		err = checkBinary(root, m.Binary)
	}
	root.Close()
	if err != nil {
		return "", err
	}
	id := "r" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := atomicfile.WriteFile(filepath.Join(releases, id+".json"), mustJSON(m), 0o600); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	if err := os.Rename(staging, filepath.Join(releases, id)); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	ok = true
	return id, nil
}

func checkBinary(root *os.Root, bin string) error {
	var st os.FileInfo
	var err error
	if filepath.IsAbs(bin) {
		st, err = os.Stat(bin)
	} else {
		st, err = root.Stat(bin)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%w: %q is not in the package", ErrBinaryNotFound, bin)
	case !st.Mode().IsRegular() || st.Mode().Perm()&0o100 == 0:
		return fmt.Errorf("%w: %q is not an executable file", ErrBinaryNotFound, bin)
	}
	return nil
}

// swap stops the running version, points current at id and starts it,
// rolling back on failure. p.op is held.
func (a *Agent) swap(ctx context.Context, p *pkg, id string, m Manifest) error {
	p.mu.Lock()
	old, oldRelease, oldManifest := p.proc, p.release, p.manifest
	p.mu.Unlock()
	wasRunning := old != nil && !old.stopping()
	if old != nil {
		if err := old.stop(ctx); err != nil {
			a.cfg.Logger.Warn("old version killed after the stop timeout", "package", p.name)
		}
	}
	if err := setCurrent(p.dir, id); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	np, err := a.startProc(p, id, m)
	exit := ""
	if err != nil {
		exit = err.Error()
	} else {
		t := time.NewTimer(a.cfg.StartGrace)
		select {
		case exit = <-np.firstExit:
		case <-t.C:
		case <-ctx.Done():
			exit = "install cancelled: " + ctx.Err().Error()
		}
		t.Stop()
		if exit != "" {
			np.stop(context.WithoutCancel(ctx))
		}
	}
	if exit == "" {
		p.mu.Lock()
		p.proc, p.release, p.manifest = np, id, m
		p.mu.Unlock()
		a.prune(p, id, oldRelease)
		writeWanted(p.dir, true)
		return nil
	}
	// Roll back.
	serr := &StartError{Package: p.name, Exit: exit, Output: tailFile(filepath.Join(p.dir, "output.log"), 4096)}
	if oldRelease != "" {
		serr.RolledBack = true
		if err := setCurrent(p.dir, oldRelease); err != nil {
			return errors.Join(serr, fmt.Errorf("agent: rollback: %w", err))
		}
		p.mu.Lock()
		p.proc = nil
		p.mu.Unlock()
		if wasRunning {
			rp, err := a.startProc(p, oldRelease, oldManifest)
			if err != nil {
				return errors.Join(serr, fmt.Errorf("agent: restarting the previous version: %w", err))
			}
			p.mu.Lock()
			p.proc = rp
			p.mu.Unlock()
		}
		a.emit(Event{Package: p.name, Kind: EventRolledBack})
	} else {
		os.Remove(filepath.Join(p.dir, "current"))
	}
	os.RemoveAll(filepath.Join(p.dir, "releases", id))
	os.Remove(filepath.Join(p.dir, "releases", id+".json"))
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), serr)
	}
	return serr
}

// startProc starts release id's program under supervision.
func (a *Agent) startProc(p *pkg, id string, m Manifest) (*proc, error) {
	p.mu.Lock()
	if p.log == nil {
		l, err := openCappedLog(filepath.Join(p.dir, "output.log"), a.cfg.MaxLog)
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.log = l
	}
	out := p.log
	p.mu.Unlock()
	dir := filepath.Join(p.dir, "releases", id)
	bin := m.Binary
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(dir, bin)
	}
	np := &proc{
		name: p.name, dir: dir, pkgDir: p.dir, bin: bin, args: slices.Clone(m.Args), out: out,
		backoffMin: a.cfg.BackoffMin, backoffMax: a.cfg.BackoffMax, stopTimeout: a.cfg.StopTimeout,
		emit: a.emit,
	}
	if err := np.start(); err != nil {
		return nil, err
	}
	return np, nil
}

// prune removes every release except those in keep (the current and the
// previous one, for a manual rollback).
func (a *Agent) prune(p *pkg, keep ...string) {
	dir := filepath.Join(p.dir, "releases")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		id := e.Name()
		if e.IsDir() && !slices.Contains(keep, id) && id[0] != '.' {
			os.RemoveAll(filepath.Join(dir, id))
			os.Remove(filepath.Join(dir, id+".json"))
		}
	}
}

// setCurrent points DIR/NAME/current at releases/id atomically (a new
// symlink renamed over the old one).
func setCurrent(dir, id string) error {
	tmp := filepath.Join(dir, ".current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("releases", id), tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "current"))
}

func readManifest(dir, id string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, "releases", id+".json"))
	if err != nil {
		return m, err
	}
	err = json.Unmarshal(b, &m)
	return m, err
}

func writeWanted(dir string, running bool) {
	v := "stopped\n"
	if running {
		v = "running\n"
	}
	_ = atomicfile.WriteFile(filepath.Join(dir, "wanted"), []byte(v), 0o600)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled here
	}
	return b
}

// Start starts the installed program of name if it is not running.
// Errors: ErrNotFound, ErrBadRequest for a bad name, or the exec error as a
// *StartError.
func (a *Agent) Start(ctx context.Context, name string) (Status, error) {
	p, err := a.lookup(name, false)
	if err != nil {
		return Status{}, err
	}
	p.op.Lock()
	defer p.op.Unlock()
	if err := ctx.Err(); err != nil {
		return Status{}, err
	}
	p.mu.Lock()
	cur, id, m := p.proc, p.release, p.manifest
	p.mu.Unlock()
	if id == "" {
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if cur != nil && !cur.stopping() {
		return p.status(), nil
	}
	np, err := a.startProc(p, id, m)
	if err != nil {
		return p.status(), &StartError{Package: name, Exit: err.Error()}
	}
	p.mu.Lock()
	p.proc = np
	p.mu.Unlock()
	writeWanted(p.dir, true)
	return p.status(), nil
}

// Stop stops name's program (SIGTERM, then SIGKILL after StopTimeout) and
// its supervisor. Errors: ErrNotFound, ErrBadRequest, or ctx's error (the
// program is then killed).
func (a *Agent) Stop(ctx context.Context, name string) (Status, error) {
	p, err := a.lookup(name, false)
	if err != nil {
		return Status{}, err
	}
	p.op.Lock()
	defer p.op.Unlock()
	p.mu.Lock()
	cur := p.proc
	p.mu.Unlock()
	if cur != nil {
		err = cur.stop(ctx)
	}
	writeWanted(p.dir, false)
	return p.status(), err
}

// Status reports name's state. Errors: ErrNotFound, ErrBadRequest.
func (a *Agent) Status(name string) (Status, error) {
	p, err := a.lookup(name, false)
	if err != nil {
		return Status{}, err
	}
	st := p.status()
	if st.Release == "" {
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return st, nil
}

// Packages reports every installed package, sorted by name.
func (a *Agent) Packages() []Status {
	a.mu.Lock()
	ps := make([]*pkg, 0, len(a.pkgs))
	for _, p := range a.pkgs {
		ps = append(ps, p)
	}
	a.mu.Unlock()
	out := make([]Status, 0, len(ps))
	for _, p := range ps {
		if st := p.status(); st.Release != "" {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(x, y Status) int {
		if x.Name < y.Name {
			return -1
		}
		if x.Name > y.Name {
			return 1
		}
		return 0
	})
	return out
}

// Resume starts every installed package that was running when the agent
// last stopped (its desired state is kept on disk), for a daemon restart.
// It returns the errors of those that failed to start, joined.
func (a *Agent) Resume(ctx context.Context) error {
	var errs []error
	for _, st := range a.Packages() {
		b, err := os.ReadFile(filepath.Join(a.cfg.Dir, st.Name, "wanted"))
		if err != nil || string(b) != "running\n" {
			continue
		}
		if _, err := a.Start(ctx, st.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops every program (their desired state on disk stays, so Resume
// restarts them), closes the logs and releases the directory lock, so
// another agent may start on it. The Agent must not be used afterwards;
// calling Close again does nothing more.
func (a *Agent) Close(ctx context.Context) error {
	defer a.closeOnce.Do(func() { a.lock.Close() })
	a.mu.Lock()
	ps := make([]*pkg, 0, len(a.pkgs))
	for _, p := range a.pkgs {
		ps = append(ps, p)
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() {
			p.op.Lock()
			defer p.op.Unlock()
			p.mu.Lock()
			cur, l := p.proc, p.log
			p.mu.Unlock()
			if cur != nil {
				cur.stop(ctx)
			}
			if l != nil {
				l.Close()
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

func (p *pkg) status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Name: p.name, Release: p.release, Binary: p.manifest.Binary, Args: p.manifest.Args}
	if p.proc != nil {
		p.proc.mu.Lock()
		st.Running, st.Pid, st.Restarts, st.LastExit = p.proc.running, p.proc.pid, p.proc.restarts, p.proc.lastExit
		if p.proc.running {
			st.StartedAt = p.proc.startedAt
		}
		p.proc.mu.Unlock()
	}
	return st
}

// ctxReader stops a Read loop once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
