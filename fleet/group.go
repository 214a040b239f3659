package fleet

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// DefaultConcurrency is Group's Concurrency when it is zero.
const DefaultConcurrency = 50

// ErrSharedStdin is returned by Group.Run for a Command with Stdin: one
// reader cannot feed many hosts.
var ErrSharedStdin = errors.New("fleet: command stdin cannot be shared by many hosts")

// Group runs one command on many hosts through an Executor, with a
// sliding window of at most Concurrency hosts in flight: a new host
// starts as soon as any finishes. The zero value needs only Executor.
//
// Each host costs goroutines and one socket, never a select() slot, so
// thousands of hosts work; the process's open-file limit (which Go raises
// to its hard limit at start) is the ceiling.
type Group struct {
	// Executor runs each host's command; required.
	Executor Executor
	// Concurrency is the number of hosts in flight; 0 means 50.
	Concurrency int
	// HostTimeout bounds each host (connect and command); 0 means only
	// the caller's context does.
	HostTimeout time.Duration
	// DialRate limits how many hosts start per second, to spare sshd's
	// MaxStartups and the network; 0 means no limit.
	DialRate float64
	// OnResult, if set, is called as each host finishes, one call at a
	// time, in completion order.
	OnResult func(Result, error)
	// Logger receives one event per failed host; nil discards.
	Logger *slog.Logger
}

// Summary is what a fan-out did.
type Summary struct {
	// Results holds one Result per host, index for index with the hosts
	// passed to Run (a host that never started has only Host set and
	// ExitCode -1).
	Results []Result
	// Errors holds each host's error, nil for success, index for index.
	Errors []error
	// Succeeded and Failed list hosts in the order they finished;
	// NotStarted lists those skipped because the context ended first.
	Succeeded, Failed, NotStarted []string
}

// Err returns errors.Join of the failed hosts' errors, or nil.
func (s *Summary) Err() error { return errors.Join(s.Errors...) }

// Run runs cmd on every host (cmd.Host is set per host) and returns when
// all have finished. The error is errors.Join of every failed host's
// error (use errors.Is/As on it, or Summary.Errors per host). When ctx
// ends, no further host starts and those in flight are cancelled; the
// hosts not started are listed in Summary.NotStarted with an error
// matching context.Canceled. A host that names no machine ("", "@",
// "user@") makes Run return a *HostError matching ErrInvalidHost before
// any host starts.
func (g *Group) Run(ctx context.Context, hosts []string, cmd Command) (*Summary, error) {
	if cmd.Stdin != nil {
		return nil, ErrSharedStdin
	}
	if err := cmd.validate(); err != nil {
		return nil, err
	}
	if g.Executor == nil {
		return nil, errors.New("fleet: Group.Executor is nil")
	}
	return g.Do(ctx, hosts, func(ctx context.Context, host string) (Result, error) {
		c := cmd
		c.Host = host
		return g.Executor.Run(ctx, c)
	})
}

// Do is Run for any per-host work: it calls fn for every host with the
// same window, timeout, rate limit, callbacks and summary. Executor is not
// used. fn must return when ctx ends. Like Run, it refuses a host that
// names no machine (ErrInvalidHost) before calling fn for any.
func (g *Group) Do(ctx context.Context, hosts []string, fn func(ctx context.Context, host string) (Result, error)) (*Summary, error) {
	for _, h := range hosts {
		if err := CheckHost(h); err != nil {
			return nil, err
		}
	}
	n := g.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	log := logger(g.Logger)
	sum := &Summary{Results: make([]Result, len(hosts)), Errors: make([]error, len(hosts))}
	var mu sync.Mutex
	finish := func(i int, res Result, err error, started bool) {
		mu.Lock()
		defer mu.Unlock()
		sum.Results[i], sum.Errors[i] = res, err
		switch {
		case !started:
			sum.NotStarted = append(sum.NotStarted, hosts[i])
		case err != nil:
			sum.Failed = append(sum.Failed, hosts[i])
			log.WarnContext(ctx, "host failed", "host", hosts[i], "err", err)
		default:
			sum.Succeeded = append(sum.Succeeded, hosts[i])
		}
		if started && g.OnResult != nil {
			g.OnResult(res, err)
		}
	}
	var eg errgroup.Group
	eg.SetLimit(n)
	lim := rateLimiter{rate: g.DialRate}
	for i, h := range hosts {
		if err := lim.wait(ctx); err != nil {
			break
		}
		eg.Go(func() error {
			if ctx.Err() != nil {
				return nil // marked below as not started
			}
			hctx, cancel := ctx, context.CancelFunc(func() {})
			if g.HostTimeout > 0 {
				hctx, cancel = context.WithTimeout(ctx, g.HostTimeout)
			}
			defer cancel()
			res, err := fn(hctx, h)
			res.Host = h
			finish(i, res, err, true)
			return nil
		})
	}
	eg.Wait()
	// Whatever has no result yet never started.
	for i, h := range hosts {
		if sum.Results[i].Host == "" {
			finish(i, Result{Host: h, ExitCode: -1}, ctxError(h, ctx), false)
		}
	}
	return sum, sum.Err()
}

// Stream runs cmd on every host like Run and yields each host's Result and
// error as it finishes. Breaking out of the loop cancels the hosts still
// in flight and starts no more. Hosts never started are not yielded.
func (g *Group) Stream(ctx context.Context, hosts []string, cmd Command) iter.Seq2[Result, error] {
	return func(yield func(Result, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type item struct {
			res Result
			err error
		}
		ch := make(chan item)
		done := make(chan struct{})
		gg := *g
		gg.OnResult = func(r Result, err error) {
			select {
			case ch <- item{r, err}:
			case <-done:
			}
		}
		var runErr error
		go func() {
			defer close(ch)
			_, runErr = gg.Run(ctx, hosts, cmd)
		}()
		defer func() {
			close(done)
			cancel()
			for range ch {
			}
		}()
		for it := range ch {
			if !yield(it.res, it.err) {
				return
			}
		}
		if errors.Is(runErr, ErrSharedStdin) || errors.Is(runErr, ErrEmptyCommand) || errors.Is(runErr, ErrInvalidHost) {
			yield(Result{ExitCode: -1}, runErr)
		}
	}
}

// rateLimiter spaces starts 1/rate seconds apart.
type rateLimiter struct {
	rate float64
	next time.Time
}

func (l *rateLimiter) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.rate <= 0 {
		return nil
	}
	now := time.Now()
	if d := l.next.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		now = l.next
	}
	l.next = now.Add(time.Duration(float64(time.Second) / l.rate))
	return nil
}
