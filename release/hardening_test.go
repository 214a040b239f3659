package release_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/internal/promtest"
	"github.com/opskit/opskit/release"
)

// TestHardening11FilesHidesIncoming: the directory index of Files lists the
// products, never .incoming (nor any other dot name).
func TestHardening11FilesHidesIncoming(t *testing.T) {
	rc, _ := newReceiver(t, release.ReceiverConfig{})
	body, ct := form(t, goodForm("x")...)
	require.Equal(t, http.StatusCreated, post(t, rc, body, ct, testSecret).Status)
	srv := httptest.NewServer(rc.Files())
	t.Cleanup(srv.Close)
	for path, want := range map[string]string{"/": "app/", "/app/": "1.0.0/", "/app/1.0.0/": "release.tgz"} {
		code, got := get(t, srv.URL+path)
		assert.Equal(t, http.StatusOK, code, "GET %s", path)
		assert.Contains(t, got, want, "GET %s", path)
		assert.NotContains(t, got, ".incoming", "GET %s lists the uploads in progress", path)
		assert.NotContains(t, got, ".hook", "GET %s lists a marker", path)
	}
	code, _ := get(t, srv.URL+"/.incoming/")
	assert.Equal(t, http.StatusNotFound, code)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestHardening04NotServedUntilHookSucceeded: while the hook runs, and
// when it failed, Files answers 404 for the release and leaves it out of
// the listing; once the hook succeeded it serves it.
func TestHardening04NotServedUntilHookSucceeded(t *testing.T) {
	entered := make(chan struct{})
	proceed := make(chan error)
	rc, _ := newReceiver(t, release.ReceiverConfig{Hook: func(context.Context, release.Release) error {
		entered <- struct{}{}
		return <-proceed
	}})
	files := httptest.NewServer(rc.Files())
	t.Cleanup(files.Close)
	body, ct := form(t, goodForm("content")...)
	for _, hookErr := range []error{fmt.Errorf("deploy failed"), nil} {
		done := make(chan reply, 1)
		go func() { done <- post(t, rc, body, ct, testSecret) }()
		<-entered
		code, _ := get(t, files.URL+"/app/1.0.0/release.tgz")
		assert.Equal(t, http.StatusNotFound, code, "GET while the hook runs")
		_, listing := get(t, files.URL+"/app/")
		assert.NotContains(t, listing, "1.0.0", "listing while the hook runs")
		proceed <- hookErr
		r := <-done
		code, got := get(t, files.URL+"/app/1.0.0/release.tgz")
		if hookErr != nil {
			assert.Equal(t, http.StatusInternalServerError, r.Status)
			assert.Equal(t, http.StatusNotFound, code, "GET after the hook failed")
		} else {
			assert.Equal(t, http.StatusCreated, r.Status)
			assert.Equal(t, http.StatusOK, code, "GET after the hook succeeded")
			assert.Equal(t, "content", got)
		}
	}
}

const helperEnv = "OPSKIT_RELEASE_HELPER"

// TestReceiverHelper is the release server the crash and memory tests run
// in a subprocess; it does nothing in a normal test run. It serves a
// Receiver on loopback and prints "listening <addr>" on stdout.
func TestReceiverHelper(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("runs only as a subprocess of the crash and memory tests")
	}
	cfg := release.ReceiverConfig{Dir: os.Getenv(helperEnv + "_DIR"), Secrets: []release.Secret{testSecret}}
	if mode == "slowhook" {
		cfg.Hook = func(context.Context, release.Release) error {
			fmt.Println("hook running")
			time.Sleep(time.Hour) // until SIGKILL
			return nil
		}
	}
	rc, err := release.NewReceiver(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	fmt.Println("listening", ln.Addr())
	srv.Serve(ln)
}

// startHelper runs TestReceiverHelper in a subprocess and returns it with
// its address and the rest of its stdout.
func startHelper(t *testing.T, mode, dir string) (*exec.Cmd, string, *bufio.Scanner) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestReceiverHelper$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperEnv+"_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			return cmd, addr, sc
		}
	}
	t.Fatalf("the helper never listened: %v", sc.Err())
	return nil, "", nil
}

// TestHardening04HookCrashRetry kills the server (SIGKILL) while the hook
// of a new release runs. After the restart the release is not served; a
// retry of the upload runs the hook and answers 201; and on another
// crashed release RunPendingHooks (startup) runs the hook.
func TestHardening04HookCrashRetry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	dir := t.TempDir()
	crash := func(version string) {
		cmd, addr, sc := startHelper(t, "slowhook", dir)
		up := &release.Uploader{URL: "http://" + addr, Secret: testSecret}
		go up.Upload(context.Background(), release.Metadata{Product: "app", Version: version}, strings.NewReader("tarball "+version), int64(len("tarball "+version)))
		for sc.Scan() && sc.Text() != "hook running" {
		}
		require.Equal(t, "hook running", sc.Text(), "the hook never started")
		require.NoError(t, cmd.Process.Kill())
		cmd.Wait()
	}
	crash("1.0.0")
	crash("2.0.0")

	var mu sync.Mutex
	var ran []string
	rc, _ := newReceiver(t, release.ReceiverConfig{Dir: dir, Hook: func(_ context.Context, r release.Release) error {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, r.Version+" "+readFile(t, r.Tarball))
		return nil
	}})
	files := httptest.NewServer(rc.Files())
	t.Cleanup(files.Close)
	for _, v := range []string{"1.0.0", "2.0.0"} {
		code, _ := get(t, files.URL+"/app/"+v+"/release.tgz")
		assert.Equal(t, http.StatusNotFound, code, "GET %s whose hook never completed", v)
	}

	// A retry of the upload runs the hook.
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	rcpt, err := (&release.Uploader{URL: srv.URL, Secret: testSecret}).Upload(t.Context(),
		release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("tarball 1.0.0"), 13)
	require.NoError(t, err)
	assert.True(t, rcpt.Created, "the retry completed the release: 201")
	assert.Equal(t, []string{"1.0.0 tarball 1.0.0"}, ran, "hook runs after the retry")
	code, got := get(t, files.URL+"/app/1.0.0/release.tgz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "tarball 1.0.0", got)

	// Startup runs the other one; a second call finds nothing to do.
	n, err := rc.RunPendingHooks(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = rc.RunPendingHooks(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 0, n)
	assert.Equal(t, []string{"1.0.0 tarball 1.0.0", "2.0.0 tarball 2.0.0"}, ran)
	code, _ = get(t, files.URL+"/app/2.0.0/release.tgz")
	assert.Equal(t, http.StatusOK, code)

	// Once done, a re-upload is the usual 200 without the hook.
	rcpt, err = (&release.Uploader{URL: srv.URL, Secret: testSecret}).Upload(t.Context(),
		release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("tarball 1.0.0"), 13)
	require.NoError(t, err)
	assert.False(t, rcpt.Created)
	assert.Len(t, ran, 2)
}

// A pending release whose hook fails again at startup is removed, as after
// a failed upload, and the error names it.
func TestHardening04PendingHookFailsAgain(t *testing.T) {
	dir := t.TempDir()
	cmd, addr, sc := startHelper(t, "slowhook", dir)
	up := &release.Uploader{URL: "http://" + addr, Secret: testSecret}
	go up.Upload(context.Background(), release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("x"), 1)
	for sc.Scan() && sc.Text() != "hook running" {
	}
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	reg := prometheus.NewRegistry()
	m, err := release.NewMetrics(reg)
	require.NoError(t, err)
	rc, _ := newReceiver(t, release.ReceiverConfig{Dir: dir, Metrics: m, Hook: func(context.Context, release.Release) error {
		return fmt.Errorf("still broken")
	}})
	n, err := rc.RunPendingHooks(t.Context())
	assert.Equal(t, 1, n)
	assert.ErrorContains(t, err, "app/1.0.0")
	assert.ErrorContains(t, err, "still broken")
	assert.Empty(t, files(t, dir))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_hooks_total", promtest.Labels("result", "failed")), "the hook run at startup is counted")
	assert.Equal(t, 0.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "hook_failed")), "but no upload")
}

func TestEnvFileRoundTrip(t *testing.T) {
	for _, log := range []string{"", "plain", "it's\n'quoted'\n", "'\\''", "\n\n", "x'"} {
		in := release.Release{Metadata: release.Metadata{Product: "p", Version: "1", Tag: "t'", Build: "b", Revision: "r",
			Commit: "c", Log: log, RPMs: true}, SHA256: sha256Hex("x"), MD5: md5Hex("x"), Size: 42}
		out, err := release.EnvFileRoundTrip(in)
		require.NoError(t, err, "log %q", log)
		assert.Equal(t, in, out)
	}
}

// rssKiB reads a process's resident set (VmRSS) or its peak (VmHWM).
func rssKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestHardening03PreAuthMemory is the attack of the issue: 30
// unauthenticated connections, each sending a legacy form whose first part
// header is 9 MiB long. The server (a subprocess with the defaults) must
// answer them without holding their bytes: its peak RSS may grow by less
// than 24 MiB (it grew by over 200 MiB before the fix).
func TestHardening03PreAuthMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	cmd, addr, _ := startHelper(t, "default", t.TempDir())
	pid := cmd.Process.Pid
	time.Sleep(200 * time.Millisecond) // let the helper settle
	before := rssKiB(t, pid, "VmHWM")
	const conns = 30
	pad := strings.Repeat("a", 9<<20)
	var wg sync.WaitGroup
	statuses := make([]string, conns)
	for i := range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				statuses[i] = err.Error()
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			head := "--B\r\nContent-Disposition: form-data; name=\"secret\"\r\nX-Pad: "
			tail := "\r\n\r\n" + testSecret + "\r\n--B--\r\n"
			go func() {
				fmt.Fprintf(c, "POST /release HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n", len(head)+len(pad)+len(tail))
				// Each write fails once the server hangs up.
				io.WriteString(c, head)
				io.WriteString(c, pad)
				io.WriteString(c, tail)
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				statuses[i] = err.Error()
				return
			}
			resp.Body.Close()
			statuses[i] = resp.Status
		})
	}
	wg.Wait()
	after := rssKiB(t, pid, "VmHWM")
	t.Logf("helper peak RSS %d KiB before, %d KiB after %d hostile connections", before, after, conns)
	for i, s := range statuses {
		assert.Equal(t, "401 Unauthorized", s, "connection %d", i)
	}
	assert.Less(t, after-before, 24<<10, "peak RSS grew by %d KiB", after-before)
}

// TestHardening03PreAuthBytes: a legacy client (no Authorization header)
// that sends more than a few KiB before its secret field, in a field or in
// a part header, gets 401 and the receiver reads no further.
func TestHardening03PreAuthBytes(t *testing.T) {
	big := strings.Repeat("x", 3000)
	for name, parts := range map[string][]field{
		"log before the secret":     {f("log", strings.Repeat(big, 4)), f("secret", testSecret)},
		"many fields before secret": {f("tag", big), f("build", big), f("commit", big), f("secret", testSecret)},
	} {
		t.Run(name, func(t *testing.T) {
			rc, dir := newReceiver(t, release.ReceiverConfig{})
			body, ct := form(t, append(parts, goodForm("x")...)...)
			r := post(t, rc, body, ct, "")
			assert.Equal(t, http.StatusUnauthorized, r.Status, "reply %+v", r)
			assert.Equal(t, []string{"secret"}, r.Fields)
			assert.Empty(t, files(t, dir))
		})
	}
	t.Run("huge part header", func(t *testing.T) {
		rc, _ := newReceiver(t, release.ReceiverConfig{})
		body := "--B\r\nContent-Disposition: form-data; name=\"secret\"\r\nX-Pad: " + strings.Repeat("a", 1<<20) + "\r\n\r\n" + testSecret + "\r\n--B--\r\n"
		cr := &countingReader{r: strings.NewReader(body)}
		req := httptest.NewRequest(http.MethodPost, "/release", cr)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, rec.Body.String())
		assert.Less(t, cr.n, 64<<10, "bytes read before authentication")
	})
	t.Run("secret first still works", func(t *testing.T) {
		rc, _ := newReceiver(t, release.ReceiverConfig{})
		body, ct := form(t, append([]field{f("secret", testSecret), f("log", strings.Repeat(big, 100))}, goodForm(strings.Repeat("z", 3<<20))...)...)
		r := post(t, rc, body, ct, "")
		assert.Equal(t, http.StatusCreated, r.Status, "reply %+v", r)
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestHardening03FieldBytes: an authenticated client cannot make the
// receiver buffer megabytes of part headers either.
func TestHardening03FieldBytes(t *testing.T) {
	rc, dir := newReceiver(t, release.ReceiverConfig{})
	body := "--B\r\nContent-Disposition: form-data; name=\"tag\"\r\nX-Pad: " + strings.Repeat("a", 8<<20) + "\r\n\r\nv1\r\n--B--\r\n"
	cr := &countingReader{r: strings.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, "/release", cr)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
	req.Header.Set("Authorization", "Bearer "+testSecret)
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, rec.Body.String())
	assert.Less(t, cr.n, 4<<20, "bytes read")
	assert.Empty(t, files(t, dir))
}

// trickle sends the first cut bytes of an upload over a raw connection,
// then one more byte every interval until stopped, so the idle timeout
// never fires.
func trickle(t *testing.T, addr, ct string, body []byte, bearer bool, cut int, interval time.Duration) (stop func()) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	auth := ""
	if bearer {
		auth = "Authorization: Bearer " + testSecret + "\r\n"
	}
	fmt.Fprintf(conn, "POST /release HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n", ct, len(body), auth)
	conn.Write(body[:cut])
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := cut; i < len(body); i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := conn.Write(body[i : i+1]); err != nil {
				return
			}
		}
	}()
	return func() { close(done); conn.Close() }
}

// TestHardening03Deadlines: trickling one byte every 20 ms keeps the idle
// timeout (1 minute) from firing, but not the total deadlines: before
// authentication AuthTimeout, after it UploadTimeout.
func TestHardening03Deadlines(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    release.ReceiverConfig
		bearer bool
	}{
		{"legacy client never reaches its secret", release.ReceiverConfig{AuthTimeout: 300 * time.Millisecond}, false},
		{"authenticated upload trickles", release.ReceiverConfig{UploadTimeout: 500 * time.Millisecond}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc, dir := newReceiver(t, tt.cfg)
			addr, done := serveRaw(t, rc)
			parts := goodForm(strings.Repeat("z", 1<<20))
			if !tt.bearer {
				parts = append([]field{f("log", strings.Repeat("l", 4000)), f("secret", testSecret)}, parts...)
			}
			body, ct := form(t, parts...)
			stop := trickle(t, addr, ct, body, tt.bearer, 100, 20*time.Millisecond)
			defer stop()
			select {
			case status := <-done:
				assert.Equal(t, http.StatusBadRequest, status)
			case <-time.After(time.Minute): // a guard against hanging, far above the deadlines
				t.Fatal("a trickling client is still being served")
			}
			assert.Empty(t, files(t, dir))
		})
	}
}

// TestHardening03MaxConcurrentUploads: with two uploads in progress and
// MaxConcurrentUploads 2, the third gets 503 with Retry-After, and a slot
// is free again once one of them finished. Unauthenticated requests take
// no slot.
func TestHardening03MaxConcurrentUploads(t *testing.T) {
	rc, _ := newReceiver(t, release.ReceiverConfig{MaxConcurrentUploads: 2})
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	started := make(chan struct{})
	gate := make(chan struct{})
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			up := &release.Uploader{URL: srv.URL, Secret: testSecret}
			content := []byte(strings.Repeat("y", 64<<10))
			_, err := up.Upload(context.Background(), release.Metadata{Product: "app", Version: fmt.Sprint(i)},
				&gateReader{data: content, started: started, gate: gate}, int64(len(content)))
			errs <- err
		}()
	}
	<-started
	<-started
	// Unauthenticated and wrongly authenticated requests are refused with
	// 401, not 503: they hold no slot.
	body, ct := form(t, goodForm("x")...)
	for _, bearer := range []string{"", "wrong"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", ct)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "bearer %q", bearer)
	}
	for _, legacy := range []bool{false, true} {
		parts := goodForm("x")
		bearer := testSecret
		if legacy {
			parts = append([]field{f("secret", testSecret)}, parts...)
			bearer = ""
		}
		body, ct := form(t, parts...)
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", ct)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "legacy=%v: %s", legacy, msg)
		assert.Equal(t, "10", resp.Header.Get("Retry-After"))
	}
	close(gate)
	for range 2 {
		assert.NoError(t, <-errs)
	}
	rcpt, err := (&release.Uploader{URL: srv.URL, Secret: testSecret}).Upload(t.Context(), release.Metadata{Product: "app", Version: "3"}, strings.NewReader("x"), 1)
	require.NoError(t, err, "a slot is free again")
	assert.True(t, rcpt.Created)
}
