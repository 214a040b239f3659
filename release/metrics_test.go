package release_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opskit/opskit/internal/promtest"
	"github.com/opskit/opskit/release"
)

var allResults = []string{"created", "identical", "conflict", "mismatch", "unauthorized", "too_large", "busy", "invalid", "hook_failed", "error"}

// uploadCounts is opskit_release_uploads_total by result, every result.
func uploadCounts(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, r := range allResults {
		out[r] = promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", r))
	}
	return out
}

// TestMetricsUploadResults sends one upload of each kind a build server
// can cause to a receiver and checks that exactly its result moved, by
// one, along with the bytes, durations, slots and hooks.
func TestMetricsUploadResults(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := release.NewMetrics(reg)
	require.NoError(t, err)
	hookStarted, hookGo := make(chan struct{}), make(chan struct{})
	rc, _ := newReceiver(t, release.ReceiverConfig{Metrics: m, MaxSize: 64, MaxConcurrentUploads: 1,
		Hook: func(_ context.Context, r release.Release) error {
			switch r.Version {
			case "bad":
				return errors.New("deploy failed")
			case "slow":
				close(hookStarted)
				<-hookGo
			}
			return nil
		}})
	want := map[string]float64{}
	for _, r := range allResults {
		want[r] = 0
	}
	assert.Equal(t, want, uploadCounts(t, reg), "every result is there at 0 before the first upload")

	send := func(bearer string, parts ...field) int {
		body, ct := form(t, parts...)
		return post(t, rc, body, ct, bearer).Status
	}
	bytes := 0.0
	for _, step := range []struct {
		name   string
		status int
		result string
		bytes  int
		send   func() int
	}{
		{"first upload", 201, "created", 5, func() int { return send(testSecret, goodForm("hello")...) }},
		{"the same again", 200, "identical", 5, func() int { return send(testSecret, goodForm("hello")...) }},
		{"other content, same version", 409, "conflict", 5, func() int { return send(testSecret, goodForm("world")...) }},
		{"wrong checksum", 422, "mismatch", 5, func() int {
			return send(testSecret, f("product", "app"), f("version", "2"), fileField("hello"), f("sha256", sha256Hex("other")))
		}},
		{"wrong secret", 401, "unauthorized", 0, func() int { return send("nope", goodForm("hello")...) }},
		{"over MaxSize", 413, "too_large", 65, func() int {
			return send(testSecret, f("product", "app"), f("version", "3"), fileField(strings.Repeat("x", 100)), f("sha256", sha256Hex("x")))
		}},
		{"missing version", 400, "invalid", 5, func() int {
			return send(testSecret, f("product", "app"), fileField("hello"), f("sha256", sha256Hex("hello")))
		}},
		{"hook fails", 500, "hook_failed", 3, func() int {
			return send(testSecret, f("product", "app"), f("version", "bad"), fileField("abc"), f("sha256", sha256Hex("abc")))
		}},
	} {
		require.Equal(t, step.status, step.send(), step.name)
		want[step.result]++
		bytes += float64(step.bytes)
		assert.Equal(t, want, uploadCounts(t, reg), "after %s: only %s moved", step.name, step.result)
		assert.Equal(t, bytes, promtest.Value(t, reg, "opskit_release_received_bytes_total", nil), "file bytes after %s", step.name)
		assert.Equal(t, 0.0, promtest.Value(t, reg, "opskit_release_uploads_in_flight", nil), "after %s", step.name)
	}
	assert.Equal(t, 2.0, promtest.Value(t, reg, "opskit_release_upload_duration_seconds", nil), "only the 201 and the 200 are timed")

	// Busy: the only slot is held by an upload whose hook runs.
	done := make(chan int)
	go func() {
		done <- send(testSecret, f("product", "app"), f("version", "slow"), fileField("slow"), f("sha256", sha256Hex("slow")))
	}()
	<-hookStarted
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_in_flight", nil), "the slow upload holds its slot while its hook runs")
	require.Equal(t, 503, send(testSecret, f("product", "app"), f("version", "4"), fileField("x"), f("sha256", sha256Hex("x"))))
	want["busy"]++
	assert.Equal(t, want, uploadCounts(t, reg), "only busy moved")
	close(hookGo)
	require.Equal(t, 201, <-done)
	want["created"]++
	assert.Equal(t, want, uploadCounts(t, reg))
	assert.Equal(t, 0.0, promtest.Value(t, reg, "opskit_release_uploads_in_flight", nil))

	// Hooks: hello, bad and slow ran.
	assert.Equal(t, 2.0, promtest.Value(t, reg, "opskit_release_hooks_total", promtest.Labels("result", "succeeded")))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_hooks_total", promtest.Labels("result", "failed")))
	assert.Equal(t, 3.0, promtest.Value(t, reg, "opskit_release_hook_duration_seconds", nil), "every hook timed")

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems, "promlint")
	_, err = release.NewMetrics(reg)
	assert.Error(t, err, "registering twice on one registry")
	_, err = release.NewMetrics(nil)
	assert.Error(t, err)
}

// TestMetricsStorageError: a full disk is an error, counted as such.
func TestMetricsStorageError(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := release.NewMetrics(reg)
	require.NoError(t, err)
	rc, _ := newReceiver(t, release.ReceiverConfig{Metrics: m})
	rc.SetWriterWrapper(func(w io.Writer) io.Writer {
		return &failAfter{w: w, n: 0, err: &os.PathError{Op: "write", Path: "release.tgz", Err: syscall.ENOSPC}}
	})
	body, ct := form(t, goodForm("hello")...)
	require.Equal(t, http.StatusInsufficientStorage, post(t, rc, body, ct, testSecret).Status)
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "error")))
	assert.Equal(t, 0.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "invalid")))
}

// TestMetricsResumable counts a resumable upload once, when it completes,
// with the bytes of every PATCH; refused tus requests are counted by
// result, HEAD and the PATCHes that let the upload go on are not.
func TestMetricsResumable(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := release.NewMetrics(reg)
	require.NoError(t, err)
	hooks := 0
	rc, _ := newReceiver(t, release.ReceiverConfig{Metrics: m, MaxSize: 1 << 20,
		Hook: func(context.Context, release.Release) error { hooks++; return nil }})
	srv := httptest.NewServer(rc.Uploads())
	t.Cleanup(srv.Close)
	content := strings.Repeat("resumable ", 1000)
	path := filepath.Join(t.TempDir(), "release.tgz")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))

	// By hand: create, two PATCHes.
	req := func(method, url string, body []byte, hdr ...string) *http.Response {
		r, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
		require.NoError(t, err)
		r.Header.Set("Tus-Resumable", "1.0.0")
		r.Header.Set("Authorization", "Bearer "+testSecret)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(r)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	meta := "product " + base64.StdEncoding.EncodeToString([]byte("app")) + ",version " + base64.StdEncoding.EncodeToString([]byte("9.0")) + ",sha256 " + base64.StdEncoding.EncodeToString([]byte(sha256Hex(content)))
	resp := req("POST", srv.URL+"/release/uploads/", nil, "Upload-Length", "10000", "Upload-Metadata", meta)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc := srv.URL + resp.Header.Get("Location")
	if strings.HasPrefix(resp.Header.Get("Location"), "http") {
		loc = resp.Header.Get("Location")
	}
	patch := func(off int, chunk string) int {
		return req("PATCH", loc, []byte(chunk), "Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.Itoa(off)).StatusCode
	}
	require.Equal(t, http.StatusNoContent, patch(0, content[:4000]))
	require.Equal(t, http.StatusOK, req("HEAD", loc, nil).StatusCode)
	assert.Equal(t, 4000.0, promtest.Value(t, reg, "opskit_release_received_bytes_total", nil), "bytes count as they arrive")
	for _, r := range allResults {
		assert.Equal(t, 0.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", r)), "nothing counted before the upload completes: %s", r)
	}
	require.Equal(t, http.StatusConflict, patch(1, content[1:2]), "a wrong offset")
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "invalid")), "a wrong offset is invalid, not a version conflict")
	assert.Equal(t, 0.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "conflict")))
	require.Equal(t, http.StatusCreated, patch(4000, content[4000:]))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "created")))
	assert.Equal(t, 10000.0, promtest.Value(t, reg, "opskit_release_received_bytes_total", nil))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_upload_duration_seconds", nil))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_hooks_total", promtest.Labels("result", "succeeded")))
	assert.Equal(t, 0.0, promtest.Value(t, reg, "opskit_release_uploads_in_flight", nil))

	// The Uploader, again: the same release is identical.
	up := &release.Uploader{URL: srv.URL + "/release", Secret: testSecret}
	_, err = up.UploadFileResumable(t.Context(), release.Metadata{Product: "app", Version: "9.0"}, path, filepath.Join(t.TempDir(), "state"))
	require.NoError(t, err)
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "identical")))
	assert.Equal(t, 1, hooks, "the hook ran once")

	// Refusals.
	resp = req("POST", srv.URL+"/release/uploads/", nil, "Upload-Length", "2000000", "Upload-Metadata", meta)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	r, err := http.NewRequestWithContext(t.Context(), "PATCH", loc, strings.NewReader("x"))
	require.NoError(t, err)
	r.Header.Set("Tus-Resumable", "1.0.0")
	r.Header.Set("Authorization", "Bearer wrong")
	resp, err = http.DefaultClient.Do(r)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "too_large")))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "unauthorized")))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "created")), "unchanged")

	// A chunk whose Upload-Checksum does not match (460), and an upload
	// whose bytes do not match the sha256 it was created with (422): both
	// are mismatches.
	wrong := "product " + base64.StdEncoding.EncodeToString([]byte("app")) + ",version " + base64.StdEncoding.EncodeToString([]byte("9.1")) +
		",sha256 " + base64.StdEncoding.EncodeToString([]byte(sha256Hex("something else")))
	resp = req("POST", srv.URL+"/release/uploads/", nil, "Upload-Length", "4", "Upload-Metadata", wrong)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc = resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = srv.URL + loc
	}
	require.Equal(t, 460, req("PATCH", loc, []byte("abcd"), "Content-Type", "application/offset+octet-stream", "Upload-Offset", "0",
		"Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(make([]byte, 32))).StatusCode)
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "mismatch")), "the corrupted chunk")
	require.Equal(t, http.StatusUnprocessableEntity, patch(0, "abcd"))
	assert.Equal(t, 2.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "mismatch")), "the whole upload")
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "created")), "unchanged")
}

// TestMetricsResumableBusy: a PATCH that finds every upload slot taken is
// answered 503 and counted as busy.
func TestMetricsResumableBusy(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := release.NewMetrics(reg)
	require.NoError(t, err)
	started, proceed := make(chan struct{}), make(chan struct{})
	rc, _ := newReceiver(t, release.ReceiverConfig{Metrics: m, MaxConcurrentUploads: 1,
		Hook: func(context.Context, release.Release) error { close(started); <-proceed; return nil }})
	mux := http.NewServeMux()
	mux.Handle("POST /release", rc)
	mux.Handle("/release/uploads/", rc.Uploads())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	meta := "product " + base64.StdEncoding.EncodeToString([]byte("app")) + ",version " + base64.StdEncoding.EncodeToString([]byte("2.0")) +
		",sha256 " + base64.StdEncoding.EncodeToString([]byte(sha256Hex("data")))
	r, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/release/uploads/", nil)
	require.NoError(t, err)
	r.Header.Set("Tus-Resumable", "1.0.0")
	r.Header.Set("Authorization", "Bearer "+testSecret)
	r.Header.Set("Upload-Length", "4")
	r.Header.Set("Upload-Metadata", meta)
	resp, err := http.DefaultClient.Do(r)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = srv.URL + loc
	}

	done := make(chan error, 1)
	go func() {
		_, err := (&release.Uploader{URL: srv.URL + "/release", Secret: testSecret}).Upload(context.Background(),
			release.Metadata{Product: "app", Version: "1.0"}, strings.NewReader("slow"), 4)
		done <- err
	}()
	<-started
	p, err := http.NewRequestWithContext(t.Context(), "PATCH", loc, strings.NewReader("data"))
	require.NoError(t, err)
	p.Header.Set("Tus-Resumable", "1.0.0")
	p.Header.Set("Authorization", "Bearer "+testSecret)
	p.Header.Set("Content-Type", "application/offset+octet-stream")
	p.Header.Set("Upload-Offset", "0")
	resp, err = http.DefaultClient.Do(p)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "busy")))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_in_flight", nil))
	close(proceed)
	require.NoError(t, <-done)
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", "created")))
	assert.Equal(t, 0.0, promtest.Value(t, reg, "opskit_release_uploads_in_flight", nil))
	assert.Equal(t, 4.0, promtest.Value(t, reg, "opskit_release_received_bytes_total", nil), "the form upload's 4 bytes; the refused PATCH's body was not read")
}

// TestUploadSpans: an upload is one span with its hook as a child, in one
// trace, the result and the release on the upload span; a failed hook
// marks both spans as errors.
func TestUploadSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	rc, _ := newReceiver(t, release.ReceiverConfig{TracerProvider: tp, Hook: func(_ context.Context, r release.Release) error {
		if r.Version == "bad" {
			return errors.New("deploy failed")
		}
		return nil
	}})
	body, ct := form(t, goodForm("hello")...)
	require.Equal(t, 201, post(t, rc, body, ct, testSecret).Status)

	spans := exp.GetSpans()
	require.Len(t, spans, 2, "an upload span and a hook span")
	hook, upload := spans[0], spans[1] // the child ends first
	assert.Equal(t, "release hook", hook.Name)
	assert.Equal(t, "release upload", upload.Name)
	assert.False(t, upload.Parent.IsValid(), "the upload is the root here")
	assert.Equal(t, upload.SpanContext.TraceID(), hook.SpanContext.TraceID())
	assert.Equal(t, upload.SpanContext.SpanID(), hook.Parent.SpanID(), "the hook is a child of the upload")
	attrs := func(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
		m := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes {
			m[kv.Key] = kv.Value
		}
		return m
	}
	ua := attrs(upload)
	assert.Equal(t, "created", ua["opskit.result"].AsString())
	assert.Equal(t, "app", ua["release.product"].AsString())
	assert.Equal(t, "1.0.0", ua["release.version"].AsString())
	assert.Equal(t, sha256Hex("hello"), ua["release.sha256"].AsString())
	assert.Equal(t, int64(201), ua["http.response.status_code"].AsInt64())
	assert.Equal(t, "succeeded", attrs(hook)["opskit.result"].AsString())
	assert.Equal(t, codes.Unset, upload.Status.Code)

	exp.Reset()
	body, ct = form(t, f("product", "app"), f("version", "bad"), fileField("abc"), f("sha256", sha256Hex("abc")))
	require.Equal(t, 500, post(t, rc, body, ct, testSecret).Status)
	spans = exp.GetSpans()
	require.Len(t, spans, 2)
	assert.Equal(t, "failed", attrs(spans[0])["opskit.result"].AsString())
	assert.Equal(t, codes.Error, spans[0].Status.Code)
	assert.Equal(t, "hook_failed", attrs(spans[1])["opskit.result"].AsString())
	assert.Equal(t, codes.Error, spans[1].Status.Code)

	exp.Reset()
	body, ct = form(t, goodForm("hello")...)
	require.Equal(t, 401, post(t, rc, body, ct, "wrong").Status)
	spans = exp.GetSpans()
	require.Len(t, spans, 1, "no hook for a refused upload")
	assert.Equal(t, "unauthorized", attrs(spans[0])["opskit.result"].AsString())
	assert.Equal(t, codes.Unset, spans[0].Status.Code, "a client's mistake is not the server's error")
}

// TestResumableUploadSpans: a resumable upload's creating POST and its
// PATCH are spans; the PATCH that completes the file carries the result and
// has the hook as its child.
func TestResumableUploadSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	rc, _ := newReceiver(t, release.ReceiverConfig{TracerProvider: tp, Hook: func(context.Context, release.Release) error { return nil }})
	srv := httptest.NewServer(rc.Uploads())
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "release.tgz")
	require.NoError(t, os.WriteFile(path, []byte("resumable"), 0o644))
	_, err := (&release.Uploader{URL: srv.URL + "/release", Secret: testSecret}).UploadFileResumable(t.Context(),
		release.Metadata{Product: "app", Version: "1.0"}, path, filepath.Join(t.TempDir(), "state"))
	require.NoError(t, err)

	byName := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		byName[s.Name] = s
	}
	require.Contains(t, byName, "release upload create")
	require.Contains(t, byName, "release upload patch")
	require.Contains(t, byName, "release hook")
	patch, hook := byName["release upload patch"], byName["release hook"]
	assert.Equal(t, patch.SpanContext.SpanID(), hook.Parent.SpanID(), "the hook is a child of the completing PATCH")
	var result string
	for _, kv := range patch.Attributes {
		if kv.Key == "opskit.result" {
			result = kv.Value.AsString()
		}
	}
	assert.Equal(t, "created", result)
}
