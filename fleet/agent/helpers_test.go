package agent_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet/agent"
)

var (
	helperOnce sync.Once
	helperDir  string
	helperBin  string
	helperErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

// helperPath builds testdata/helper once per test binary (lazily, so fuzz
// workers do not pay for it).
func helperPath(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		helperDir, helperErr = os.MkdirTemp("", "agent-helper-")
		if helperErr != nil {
			return
		}
		helperBin = filepath.Join(helperDir, "helper")
		out, err := exec.Command("go", "build", "-ldflags=-s -w", "-o", helperBin, "./testdata/helper").CombinedOutput()
		if err != nil {
			helperErr = fmt.Errorf("building the helper: %v\n%s", err, out)
		}
	})
	require.NoError(t, helperErr)
	return helperBin
}

// entry is one zip entry for makeZip.
type entry struct {
	name   string
	body   []byte
	mode   os.FileMode // 0 means 0o644 (0o755 for "bin/...")
	method uint16      // 0 means Deflate
}

// makeZip builds a zip in memory from entries.
func makeZip(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.method != 0 || e.name == "" {
			h.Method = e.method
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		require.NoError(t, err)
		_, err = w.Write(e.body)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// helperZip is a package holding the helper program as bin/helper.
func helperZip(t testing.TB, extra ...entry) []byte {
	t.Helper()
	b, err := os.ReadFile(helperPath(t))
	require.NoError(t, err)
	return makeZip(t, append([]entry{{name: "bin/helper", body: b, mode: 0o755, method: zip.Store}}, extra...)...)
}

// tinyZip is a package whose bin/helper is not a real program, for
// installs that fail before anything starts.
func tinyZip(t testing.TB, extra ...entry) []byte {
	t.Helper()
	return makeZip(t, append([]entry{{name: "bin/helper", body: []byte("not a program"), mode: 0o755}}, extra...)...)
}

// events collects an agent's events for tests to wait on.
type events struct {
	mu  sync.Mutex
	all []agent.Event
	ch  chan agent.Event
}

func newEvents() *events { return &events{ch: make(chan agent.Event, 1000)} }

func (e *events) on(ev agent.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	select {
	case e.ch <- ev:
	default:
	}
}

// wait returns the next event of kind for pkg, failing after a generous
// deadline (a hang guard, not a timing assertion).
func (e *events) wait(t testing.TB, pkg string, kind agent.EventKind) agent.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-e.ch:
			if ev.Package == pkg && ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event for %s", kind, pkg)
		}
	}
}

// newAgent starts an Agent in a temp dir with fast test settings.
func newAgent(t testing.TB, mod func(*agent.Config)) (*agent.Agent, *events, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pkgs")
	ev := newEvents()
	cfg := agent.Config{
		Dir:         dir,
		StartGrace:  200 * time.Millisecond,
		BackoffMin:  10 * time.Millisecond,
		BackoffMax:  50 * time.Millisecond,
		StopTimeout: 5 * time.Second,
		OnEvent:     ev.on,
		Sampler:     agent.NewSampler(agent.SamplerConfig{Collect: fakeCollect}),
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := agent.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(context.Background()) })
	return a, ev, dir
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return string(b)
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

func httptestRequest(method, target string) *http.Request {
	return httptest.NewRequest(method, target, nil)
}

// countWriter is a ResponseWriter that only counts.
type countWriter struct {
	h http.Header
	n int64
}

func (w *countWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *countWriter) Write(b []byte) (int, error) { w.n += int64(len(b)); return len(b), nil }
func (w *countWriter) WriteHeader(int)             {}
