package release_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
)

var stored = []string{"app/1.0.0/release.env", "app/1.0.0/release.tgz"}

func TestReceiverStores(t *testing.T) {
	const content = "tarball bytes\x00\x01\x02"
	tests := []struct {
		name   string
		parts  []field
		bearer string
		md5    bool
	}{
		{"bearer, sha256 after the file", goodForm(content), testSecret, false},
		{"bearer, sha256 before the file", []field{f("product", "app"), f("version", "1.0.0"), f("sha256", sha256Hex(content)), fileField(content)}, testSecret, false},
		{"legacy curl form: secret field, md5 last", []field{
			f("secret", testSecret), f("product", "app"), f("version", "1.0.0"), f("tag", "v1.0.0"),
			f("build", "42"), f("revision", "7"), f("commit", "abc123"), fileField(content),
			f("log", "fixed it"), f("rpms", "1"), f("md5", md5Hex(content)),
		}, "", true},
		{"legacy md5 before the file", []field{f("secret", testSecret), f("product", "app"), f("version", "1.0.0"), f("md5", md5Hex(content)), fileField(content)}, "", true},
		{"both checksums", []field{f("product", "app"), f("version", "1.0.0"), fileField(content), f("sha256", sha256Hex(content)), f("md5", md5Hex(content))}, testSecret, true},
		{"uppercase hex", []field{f("product", "app"), f("version", "1.0.0"), fileField(content), f("sha256", strings.ToUpper(sha256Hex(content)))}, testSecret, false},
		{"unknown fields are ignored", goodForm(content, f("color", "blue")), testSecret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []release.Release
			rc, dir := newReceiver(t, release.ReceiverConfig{Hook: func(_ context.Context, r release.Release) error {
				got = append(got, r)
				return nil
			}})
			body, ct := form(t, tt.parts...)
			r := post(t, rc, body, ct, tt.bearer)
			require.Equal(t, http.StatusCreated, r.Status, "reply: %+v", r)
			assert.Equal(t, reply{Status: 201, Product: "app", Version: "1.0.0", SHA256: sha256Hex(content), Size: int64(len(content))},
				reply{Status: r.Status, Product: r.Product, Version: r.Version, SHA256: r.SHA256, Size: r.Size})
			assert.Equal(t, stored, files(t, dir))
			assert.Equal(t, content, readFile(t, filepath.Join(dir, "app/1.0.0/release.tgz")))
			require.Len(t, got, 1, "hook calls")
			assert.Equal(t, filepath.Join(dir, "app/1.0.0/release.tgz"), got[0].Tarball)
			assert.Equal(t, filepath.Join(dir, "app/1.0.0/release.env"), got[0].EnvFile)
			assert.Equal(t, sha256Hex(content), got[0].SHA256)
			if tt.md5 {
				assert.Equal(t, md5Hex(content), got[0].MD5)
			}
		})
	}
}

func TestReceiverLegacyFieldsReachEnvAndHook(t *testing.T) {
	var got release.Release
	rc, dir := newReceiver(t, release.ReceiverConfig{Hook: func(_ context.Context, r release.Release) error { got = r; return nil }})
	body, ct := form(t, f("secret", testSecret), f("product", "app"), f("version", "1.0.0"), f("tag", "v1.0.0"),
		f("build", "42"), f("revision", "7"), f("commit", "abc123"), fileField("x"), f("log", "line 1\nline 2"),
		f("rpms", "1"), f("md5", md5Hex("x")))
	require.Equal(t, http.StatusCreated, post(t, rc, body, ct, "").Status)
	want := release.Metadata{Product: "app", Version: "1.0.0", Tag: "v1.0.0", Build: "42", Revision: "7",
		Commit: "abc123", Log: "line 1\nline 2", RPMs: true}
	assert.Equal(t, want, got.Metadata)
	env := sourceEnv(t, filepath.Join(dir, "app/1.0.0/release.env"),
		"PRODUCT", "VERSION", "TAG", "BUILD", "REVISION", "COMMIT", "RPMS", "LOG", "SHA256", "MD5", "SIZE")
	assert.Equal(t, map[string]string{"PRODUCT": "app", "VERSION": "1.0.0", "TAG": "v1.0.0", "BUILD": "42",
		"REVISION": "7", "COMMIT": "abc123", "RPMS": "1", "LOG": "line 1\nline 2", "SHA256": sha256Hex("x"),
		"MD5": md5Hex("x"), "SIZE": "1"}, env)
}

// sourceEnv sources envFile with /bin/sh in a scratch directory and returns
// the named variables. It fails the test if sourcing created any file.
func sourceEnv(t *testing.T, envFile string, names ...string) map[string]string {
	t.Helper()
	work := t.TempDir()
	var script strings.Builder
	script.WriteString(". \"$1\" || exit 99\n")
	for _, n := range names {
		fmt.Fprintf(&script, "printf '%%s\\0' \"$%s\"\n", n)
	}
	cmd := exec.CommandContext(t.Context(), "/bin/sh", "-c", script.String(), "sh", envFile)
	cmd.Dir = work
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + work}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "sourcing %s: %s", envFile, stderr.String())
	assert.Empty(t, stderr.String(), "sourcing printed to stderr")
	assert.Empty(t, files(t, work), "sourcing release.env created files: something ran")
	vals := strings.Split(string(out), "\x00")
	require.Len(t, vals, len(names)+1)
	m := map[string]string{}
	for i, n := range names {
		m[n] = vals[i]
	}
	return m
}

func TestEnvFileRunsNothingWhenSourced(t *testing.T) {
	nasty := []string{
		"$(touch pwned-dollar)",
		"`touch pwned-backtick`",
		"it's; touch pwned-semicolon",
		"'; touch pwned-quote; '",
		"\"$(touch pwned-dq)\"",
		"line 1\ntouch pwned-newline\n",
		"\\'$(touch pwned-bs)",
		"${HOME:=x}$((1+1))",
		"'\n'",
		"",
		"ünïcödé\ttab",
	}
	for i, log := range nasty {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			rc, dir := newReceiver(t, release.ReceiverConfig{})
			body, ct := form(t, goodForm("x", f("log", log), f("tag", "v'1$(x)`y`"))...)
			require.Equal(t, http.StatusCreated, post(t, rc, body, ct, testSecret).Status)
			env := sourceEnv(t, filepath.Join(dir, "app/1.0.0/release.env"), "LOG", "TAG", "PRODUCT")
			assert.Equal(t, log, env["LOG"])
			assert.Equal(t, "v'1$(x)`y`", env["TAG"])
			assert.Equal(t, "app", env["PRODUCT"])
		})
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":     "''",
		"a b":  "'a b'",
		"it's": `'it'\''s'`,
		"$(x)": "'$(x)'",
	} {
		assert.Equal(t, want, release.ShellQuote(in), "shellQuote(%q)", in)
	}
}

// TestReceiverBadInput covers each bad input of the issue: every case gets
// its status, a JSON error naming the fields, and leaves no file behind.
func TestReceiverBadInput(t *testing.T) {
	const content = "the tarball"
	good := func(drop string, extra ...field) []field {
		var out []field
		for _, p := range goodForm(content, extra...) {
			if p.name != drop {
				out = append(out, p)
			}
		}
		return out
	}
	withField := func(name, value string) []field {
		var out []field
		for _, p := range goodForm(content) {
			if p.name == name {
				p.value = value
			}
			out = append(out, p)
		}
		return out
	}
	tests := []struct {
		name       string
		parts      []field
		bearer     string
		wantStatus int
		wantFields []string
	}{
		{"wrong bearer secret", goodForm(content), "wrong", 401, []string{}},
		{"wrong legacy secret field", append([]field{f("secret", "wrong")}, goodForm(content)...), "", 401, []string{}},
		{"missing secret", goodForm(content), "", 401, []string{"secret"}},
		{"empty secret field", append([]field{f("secret", "")}, goodForm(content)...), "", 401, []string{}},
		{"secret field after the file", append(goodForm(content), f("secret", testSecret)), "", 401, []string{"secret"}},
		{"missing product", good("product"), testSecret, 400, []string{"product"}},
		{"missing version", good("version"), testSecret, 400, []string{"version"}},
		{"missing file", good("file"), testSecret, 400, []string{"file"}},
		{"missing checksum", good("sha256"), testSecret, 400, []string{"sha256"}},
		{"missing everything", nil, testSecret, 400, []string{"product", "version", "file", "sha256"}},
		{"product with ..", withField("product", ".."), testSecret, 400, []string{"product"}},
		{"product with a slash", withField("product", "../../etc"), testSecret, 400, []string{"product"}},
		{"version with a slash", withField("version", "1.0/../../x"), testSecret, 400, []string{"version"}},
		{"version with .. inside", withField("version", "1..0"), testSecret, 400, []string{"version"}},
		{"leading dash", withField("product", "-rf"), testSecret, 400, []string{"product"}},
		{"leading dot", withField("version", ".incoming"), testSecret, 400, []string{"version"}},
		{"NUL in version", withField("version", "1.0\x00"), testSecret, 400, []string{"version"}},
		{"newline in version", withField("version", "1.0\n"), testSecret, 400, []string{"version"}},
		{"control character in tag", good("", f("tag", "v1\x1b[2J")), testSecret, 400, []string{"tag"}},
		{"NUL in log", good("", f("log", "a\x00b")), testSecret, 400, []string{"log"}},
		{"too long product", withField("product", strings.Repeat("a", 129)), testSecret, 400, []string{"product"}},
		{"bad rpms", good("", f("rpms", "maybe")), testSecret, 400, []string{"rpms"}},
		{"sha256 not hex", withField("sha256", strings.Repeat("z", 64)), testSecret, 400, []string{"sha256"}},
		{"sha256 too short", withField("sha256", "abc"), testSecret, 400, []string{"sha256"}},
		{"duplicate version", good("", f("version", "2.0.0")), testSecret, 400, []string{"version"}},
		{"duplicate file", good("", fileField("again")), testSecret, 400, []string{"file"}},
		{"checksum mismatch", withField("sha256", sha256Hex("other")), testSecret, 422, []string{"sha256"}},
		{"md5 mismatch", []field{f("secret", testSecret), f("product", "app"), f("version", "1.0.0"), fileField(content), f("md5", md5Hex("other"))}, "", 422, []string{"md5"}},
		{"oversize", goodForm(strings.Repeat("x", 101)), testSecret, 413, []string{"file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hookRan := false
			rc, dir := newReceiver(t, release.ReceiverConfig{MaxSize: 100, Hook: func(context.Context, release.Release) error {
				hookRan = true
				return nil
			}})
			body, ct := form(t, tt.parts...)
			r := post(t, rc, body, ct, tt.bearer)
			assert.Equal(t, tt.wantStatus, r.Status, "reply: %+v", r)
			assert.Equal(t, tt.wantFields, r.Fields)
			assert.True(t, strings.HasPrefix(r.Error, "release: "), "error %q", r.Error)
			assert.Contains(t, r.raw, "fields", "the JSON error body always has a fields array")
			assert.NotContains(t, r.Error, testSecret)
			assert.Empty(t, files(t, dir), "files left after a rejected upload")
			assert.False(t, hookRan, "hook ran for a rejected upload")
		})
	}
}

func TestReceiverBadRequests(t *testing.T) {
	rc, dir := newReceiver(t, release.ReceiverConfig{MaxSize: 100})
	body, ct := form(t, goodForm("x")...)
	tests := []struct {
		name   string
		method string
		body   []byte
		ct     string
		cl     int64
		want   int
	}{
		{"GET", http.MethodGet, nil, "", 0, 405},
		{"not multipart", http.MethodPost, []byte(`{"product":"app"}`), "application/json", -1, 400},
		{"no boundary", http.MethodPost, body, "multipart/form-data", -1, 400},
		{"truncated body", http.MethodPost, body[:len(body)-20], ct, -1, 400},
		{"body cut inside the file part", http.MethodPost, body[:bytes.Index(body, []byte("filename"))+40], ct, -1, 400},
		{"garbage", http.MethodPost, []byte("garbage"), ct, -1, 400},
		{"oversize Content-Length", http.MethodPost, body, ct, 100 + 3<<20, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/release", bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ct)
			req.Header.Set("Authorization", "Bearer "+testSecret)
			if tt.cl >= 0 {
				req.ContentLength = tt.cl
			}
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			assert.Equal(t, tt.want, rec.Code, "body: %s", rec.Body.String())
			assert.Contains(t, rec.Body.String(), `"error":"release: `)
			assert.Empty(t, files(t, dir))
		})
	}
}

func TestReceiverSecretRotation(t *testing.T) {
	rc, _ := newReceiver(t, release.ReceiverConfig{Secrets: []release.Secret{"old-secret", "new-secret"}})
	for i, s := range []string{"old-secret", "new-secret"} {
		body, ct := form(t, []field{f("product", "app"), f("version", fmt.Sprintf("1.0.%d", i)), fileField("x"), f("sha256", sha256Hex("x"))}...)
		assert.Equal(t, http.StatusCreated, post(t, rc, body, ct, s).Status, "secret %d", i)
	}
	body, ct := form(t, goodForm("x")...)
	assert.Equal(t, http.StatusUnauthorized, post(t, rc, body, ct, "older-secret").Status)
}

func TestNewReceiverConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for name, cfg := range map[string]release.ReceiverConfig{
		"no dir":           {Secrets: []release.Secret{"s"}},
		"missing dir":      {Dir: filepath.Join(dir, "nope"), Secrets: []release.Secret{"s"}},
		"dir is a file":    {Dir: file, Secrets: []release.Secret{"s"}},
		"no secret":        {Dir: dir},
		"only empty":       {Dir: dir, Secrets: []release.Secret{""}},
		"negative maxsize": {Dir: dir, Secrets: []release.Secret{"s"}, MaxSize: -1},
	} {
		_, err := release.NewReceiver(cfg)
		assert.Error(t, err, name)
	}
}

func TestNewReceiverRemovesCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ".incoming/upload-123"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".incoming/upload-123/release.tgz"), []byte("half"), 0o600))
	newReceiver(t, release.ReceiverConfig{Dir: dir})
	assert.Empty(t, files(t, dir))
}

func TestReceiverReuploads(t *testing.T) {
	hookRuns := 0
	rc, dir := newReceiver(t, release.ReceiverConfig{Hook: func(context.Context, release.Release) error { hookRuns++; return nil }})
	send := func(content string, extra ...field) reply {
		body, ct := form(t, goodForm(content, extra...)...)
		return post(t, rc, body, ct, testSecret)
	}
	require.Equal(t, http.StatusCreated, send("first").Status)
	env := readFile(t, filepath.Join(dir, "app/1.0.0/release.env"))

	again := send("first", f("log", "another changelog"))
	assert.Equal(t, http.StatusOK, again.Status, "same content again: %+v", again)
	assert.Equal(t, sha256Hex("first"), again.SHA256)
	assert.Equal(t, 1, hookRuns, "the hook ran again for an identical re-upload")

	conflict := send("second")
	assert.Equal(t, http.StatusConflict, conflict.Status)
	assert.Equal(t, []string{"version"}, conflict.Fields)
	assert.Equal(t, "first", readFile(t, filepath.Join(dir, "app/1.0.0/release.tgz")), "conflict changed the stored release")
	assert.Equal(t, env, readFile(t, filepath.Join(dir, "app/1.0.0/release.env")))
	assert.Equal(t, stored, files(t, dir))
	assert.Equal(t, 1, hookRuns)
}

// gateReader yields its first half, then waits for the gate, then the rest:
// it holds an upload open mid-stream.
type gateReader struct {
	data    []byte
	off     int
	started chan<- struct{}
	gate    <-chan struct{}
}

func (g *gateReader) Read(p []byte) (int, error) {
	half := len(g.data) / 2
	if g.off == half && g.started != nil {
		g.started <- struct{}{}
		g.started = nil
		<-g.gate
	}
	if g.off >= len(g.data) {
		return 0, io.EOF
	}
	end := len(g.data)
	if g.off < half {
		end = half
	}
	n := copy(p, g.data[g.off:end])
	g.off += n
	return n, nil
}

func TestReceiverConcurrentSameVersion(t *testing.T) {
	for _, tt := range []struct {
		name  string
		other string // content of the second upload
		want  []int  // the two statuses, sorted
	}{
		{"same content", "AAAAAAAAAAAAAAAA", []int{200, 201}},
		{"different content", "BBBBBBBBBBBBBBBB", []int{201, 409}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc, dir := newReceiver(t, release.ReceiverConfig{})
			srv := httptest.NewServer(rc)
			t.Cleanup(srv.Close)
			contents := []string{"AAAAAAAAAAAAAAAA", tt.other}
			started := make(chan struct{})
			gate := make(chan struct{})
			type res struct {
				content string
				rcpt    release.Receipt
				err     error
			}
			results := make(chan res, 2)
			for _, c := range contents {
				go func() {
					up := &release.Uploader{URL: srv.URL, Secret: testSecret}
					r := &gateReader{data: []byte(c), started: started, gate: gate}
					rcpt, err := up.Upload(t.Context(), release.Metadata{Product: "app", Version: "1.0.0"}, r, int64(len(c)))
					results <- res{c, rcpt, err}
				}()
			}
			<-started
			<-started // both uploads are mid-stream now
			close(gate)
			var statuses []int
			var winner string
			for range 2 {
				r := <-results
				switch {
				case r.err == nil && r.rcpt.Created:
					statuses = append(statuses, 201)
					winner = r.content
				case r.err == nil:
					statuses = append(statuses, 200)
				case errors.Is(r.err, release.ErrConflict):
					statuses = append(statuses, 409)
				default:
					t.Errorf("upload of %q: %v", r.content, r.err)
				}
			}
			if statuses[0] > statuses[1] {
				statuses[0], statuses[1] = statuses[1], statuses[0]
			}
			assert.Equal(t, tt.want, statuses)
			assert.Equal(t, stored, files(t, dir))
			assert.Equal(t, winner, readFile(t, filepath.Join(dir, "app/1.0.0/release.tgz")), "stored file is not the 201 upload")
		})
	}
}

// TestReceiverClientDisconnect sends half a body over a raw connection and
// hangs up: the receiver must leave neither a release nor a temp file.
func TestReceiverClientDisconnect(t *testing.T) {
	rc, dir := newReceiver(t, release.ReceiverConfig{})
	addr, done := serveRaw(t, rc)
	content := strings.Repeat("z", 1<<20)
	body, ct := form(t, goodForm(content)...)
	for _, tt := range []struct {
		name string
		cut  int
	}{
		{"inside the file part", len(body) / 2},
		{"before the checksum", bytes.LastIndex(body, []byte("sha256")) - 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := sendPartial(t, addr, ct, body, tt.cut)
			conn.Close()
			status := <-done
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Empty(t, files(t, dir), "files left after a disconnect")
		})
	}
}

// TestReceiverStalledClient holds half an upload open without closing the
// connection: after IdleTimeout the receiver gives up and cleans up.
func TestReceiverStalledClient(t *testing.T) {
	rc, dir := newReceiver(t, release.ReceiverConfig{IdleTimeout: 200 * time.Millisecond})
	addr, done := serveRaw(t, rc)
	body, ct := form(t, goodForm(strings.Repeat("z", 1<<20))...)
	conn := sendPartial(t, addr, ct, body, len(body)/2)
	defer conn.Close()
	select {
	case status := <-done:
		assert.Equal(t, http.StatusBadRequest, status)
	case <-time.After(time.Minute): // a guard against hanging, far above the 200ms idle timeout
		t.Fatal("the receiver is still waiting for a stalled client")
	}
	assert.Empty(t, files(t, dir), "files left by a stalled upload")
}

// serveRaw serves rc on loopback and reports the status of each request
// once the handler has returned.
func serveRaw(t *testing.T, rc http.Handler) (addr string, done <-chan int) {
	t.Helper()
	ch := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		rc.ServeHTTP(rec, r)
		ch <- rec.status
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), ch
}

// sendPartial starts an upload of body over a raw connection but sends only
// its first cut bytes. The caller closes the connection.
func sendPartial(t *testing.T, addr, contentType string, body []byte, cut int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "POST /release HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\nAuthorization: Bearer %s\r\n\r\n", contentType, len(body), testSecret)
	w.Write(body[:cut])
	require.NoError(t, w.Flush())
	return conn
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// failAfter is a writer that fails with err once n bytes were written.
type failAfter struct {
	w   io.Writer
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n, _ := f.w.Write(p[:f.n])
		f.n = 0
		return n, f.err
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func TestReceiverDiskFull(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"ENOSPC", &os.PathError{Op: "write", Path: "release.tgz", Err: syscall.ENOSPC}, http.StatusInsufficientStorage},
		{"EIO", &os.PathError{Op: "write", Path: "release.tgz", Err: syscall.EIO}, http.StatusInternalServerError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc, dir := newReceiver(t, release.ReceiverConfig{})
			rc.SetWriterWrapper(func(w io.Writer) io.Writer { return &failAfter{w: w, n: 1000, err: tt.err} })
			body, ct := form(t, goodForm(strings.Repeat("d", 3<<20))...)
			r := post(t, rc, body, ct, testSecret)
			assert.Equal(t, tt.want, r.Status, "reply %+v", r)
			assert.NotContains(t, r.Error, dir, "the error leaks a server path")
			assert.Empty(t, files(t, dir))
		})
	}
}

func TestReceiverHookFails(t *testing.T) {
	fail := true
	rc, dir := newReceiver(t, release.ReceiverConfig{Hook: func(context.Context, release.Release) error {
		if fail {
			return errors.New("deploy script exploded")
		}
		return nil
	}})
	body, ct := form(t, goodForm("x")...)
	r := post(t, rc, body, ct, testSecret)
	assert.Equal(t, http.StatusInternalServerError, r.Status)
	assert.Equal(t, "release: hook failed", r.Error)
	assert.Empty(t, files(t, dir), "a release whose hook failed is still stored")

	fail = false
	assert.Equal(t, http.StatusCreated, post(t, rc, body, ct, testSecret).Status, "retry after the hook is fixed")
	assert.Equal(t, stored, files(t, dir))
}

// logRecords is a slog handler that keeps the records' messages and attrs.
type logRecords struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logRecords) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.sh")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

func TestScriptHook(t *testing.T) {
	tests := []struct {
		name      string
		script    string
		timeout   time.Duration
		wantErr   string
		wantLog   []string
		wantStore bool
	}{
		{"succeeds, output logged", `. "$1"; echo "deploying $PRODUCT $VERSION from $(basename "$2")"; echo oops >&2`, 0, "",
			[]string{"release hook output line=deploying app 1.0.0 from release.tgz", "release hook output line=oops"}, true},
		{"exits non-zero", "echo cannot deploy; exit 3", 0, "exit status 3", []string{"line=cannot deploy"}, false},
		{"hangs past the timeout", "echo started; sleep 30", 3 * time.Second, "timed out", []string{"line=started"}, false},
		{"hangs in a child holding the output", "sleep 30 & wait", 3 * time.Second, "timed out", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logRecords{}
			script := writeScript(t, tt.script)
			hook := release.ScriptHook(script, tt.timeout, slog.New(logs))
			var hookErr error
			rc, dir := newReceiver(t, release.ReceiverConfig{Logger: slog.New(logs), Hook: func(ctx context.Context, r release.Release) error {
				hookErr = hook(ctx, r)
				return hookErr
			}})
			body, ct := form(t, goodForm("x")...)
			r := post(t, rc, body, ct, testSecret)
			if tt.wantErr == "" {
				assert.NoError(t, hookErr)
				assert.Equal(t, http.StatusCreated, r.Status)
			} else {
				require.Error(t, hookErr)
				assert.Contains(t, hookErr.Error(), tt.wantErr)
				assert.Equal(t, http.StatusInternalServerError, r.Status)
				assert.Contains(t, logs.String(), "release hook failed; removing the release")
			}
			for _, l := range tt.wantLog {
				assert.Contains(t, logs.String(), l)
			}
			if tt.wantStore {
				assert.Equal(t, stored, files(t, dir))
			} else {
				assert.Empty(t, files(t, dir))
			}
		})
	}
}

// A relative hook path and a relative Dir still work although the hook
// runs in the release's directory.
func TestScriptHookRelativePaths(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hook.sh"), []byte("#!/bin/sh\n. \"$1\" && echo \"ran $VERSION $(cat \"$2\")\"\n"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "store"), 0o755))
	t.Chdir(dir)
	logs := &logRecords{}
	rc, _ := newReceiver(t, release.ReceiverConfig{Dir: "store", Hook: release.ScriptHook("./hook.sh", 0, slog.New(logs))})
	body, ct := form(t, goodForm("tgz")...)
	assert.Equal(t, http.StatusCreated, post(t, rc, body, ct, testSecret).Status)
	assert.Contains(t, logs.String(), "line=ran 1.0.0 tgz")
}

func TestReceiverNeverLogsTheSecret(t *testing.T) {
	logs := &logRecords{}
	rc, _ := newReceiver(t, release.ReceiverConfig{Logger: slog.New(logs)})
	for _, parts := range [][]field{goodForm("x"), append([]field{f("secret", testSecret)}, goodForm("x")...)} {
		body, ct := form(t, parts...)
		post(t, rc, body, ct, testSecret)
		post(t, rc, body, ct, testSecret+"-wrong")
	}
	assert.NotEmpty(t, logs.String())
	assert.NotContains(t, logs.String(), testSecret)
}

func TestSecretNeverPrints(t *testing.T) {
	s := release.Secret("hunter2")
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "secret", s)
	for _, got := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), logged.String(),
		fmt.Sprintf("%+v", release.Uploader{Secret: s})} {
		assert.NotContains(t, got, "hunter2")
	}
}

// Sizes around the 4 KiB and 1 MiB boundaries of the receiver's direct,
// chunked writes all store exactly the bytes sent, with O_DIRECT and
// without.
func TestReceiverStoresEverySize(t *testing.T) {
	for _, tt := range []struct {
		buffered bool
		size     int
	}{
		{false, 0}, {false, 1}, {false, 4095}, {false, 4096}, {false, 4097}, {false, 1 << 20},
		{false, 1<<20 + 1}, {false, 3<<20 - 7}, {false, 3 << 20},
		{true, 4095}, {true, 1 << 20}, {true, 3<<20 - 7},
	} {
		size := tt.size
		t.Run(fmt.Sprintf("buffered=%v/%d", tt.buffered, size), func(t *testing.T) {
			rc, dir := newReceiver(t, release.ReceiverConfig{})
			rc.SetBuffered(tt.buffered)
			content := make([]byte, size)
			for i := range content {
				content[i] = byte(i*7 + i>>12)
			}
			body, ct := form(t, goodForm(string(content))...)
			r := post(t, rc, body, ct, testSecret)
			require.Equal(t, http.StatusCreated, r.Status, "reply %+v", r)
			assert.Equal(t, int64(size), r.Size)
			got, err := os.ReadFile(filepath.Join(dir, "app/1.0.0/release.tgz"))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(content, got), "stored bytes differ from the upload")
		})
	}
}

// On a file system without O_DIRECT (tmpfs on older kernels) the receiver
// falls back to buffered writes.
func TestReceiverOnTmpfs(t *testing.T) {
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		t.Skip("no /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "release-test-")
	if err != nil {
		t.Skipf("/dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rc, _ := newReceiver(t, release.ReceiverConfig{Dir: dir})
	content := strings.Repeat("t", 2<<20+5)
	body, ct := form(t, goodForm(content)...)
	require.Equal(t, http.StatusCreated, post(t, rc, body, ct, testSecret).Status)
	assert.Equal(t, content, readFile(t, filepath.Join(dir, "app/1.0.0/release.tgz")))
}
