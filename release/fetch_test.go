package release_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
)

// fileServer serves content, or misbehaves as mode says, and counts requests.
func fileServer(t *testing.T, content, mode string) (url string, requests *atomic.Int64) {
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch mode {
		case "404":
			http.NotFound(w, r)
		case "cut":
			// Promise more than is sent, then hang up.
			w.Header().Set("Content-Length", strconv.Itoa(len(content)*2))
			io.WriteString(w, content)
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			io.WriteString(w, content)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/release.tgz", requests
}

func TestFetch(t *testing.T) {
	const content = "new release bytes"
	tests := []struct {
		name         string
		existing     *string // dst content before, nil for no file
		mode         string
		sum          string
		wantErrIs    error
		wantSkipped  bool
		wantRequests int64
		wantContent  *string // nil: dst must not exist
	}{
		{"downloads a missing file", nil, "", sha256Hex(content), nil, false, 1, ptr(content)},
		{"skips a file that matches", ptr(content), "", sha256Hex(content), nil, true, 0, ptr(content)},
		{"replaces a file that differs", ptr("old"), "", sha256Hex(content), nil, false, 1, ptr(content)},
		{"checksum mismatch keeps the old file", ptr("old"), "", sha256Hex("something else"), release.ErrChecksumMismatch, false, 1, ptr("old")},
		{"checksum mismatch leaves no new file", nil, "", sha256Hex("something else"), release.ErrChecksumMismatch, false, 1, nil},
		{"404 keeps the old file", ptr("old"), "404", sha256Hex(content), nil, false, 1, ptr("old")},
		{"cut-off download keeps the old file", ptr("old"), "cut", sha256Hex(content), nil, false, 1, ptr("old")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "release.tgz")
			if tt.existing != nil {
				require.NoError(t, os.WriteFile(dst, []byte(*tt.existing), 0o640))
			}
			url, requests := fileServer(t, content, tt.mode)
			res, err := release.Fetch(t.Context(), url, dst, tt.sum)
			assert.Equal(t, tt.wantRequests, requests.Load(), "requests made")
			switch {
			case tt.mode == "404":
				var se *release.StatusError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, 404, se.Code)
			case tt.mode == "cut":
				assert.Error(t, err)
			case tt.wantErrIs != nil:
				assert.ErrorIs(t, err, tt.wantErrIs)
			default:
				require.NoError(t, err)
				assert.Equal(t, tt.wantSkipped, res.Skipped)
				assert.Equal(t, int64(len(content)), res.Size)
			}
			if tt.wantContent == nil {
				assert.NoFileExists(t, dst)
				assert.Empty(t, files(t, dir))
			} else {
				assert.Equal(t, *tt.wantContent, readFile(t, dst))
				assert.Equal(t, []string{"release.tgz"}, files(t, dir), "temp file left beside dst")
			}
			if tt.existing != nil {
				fi, err := os.Stat(dst)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "dst permissions")
			}
		})
	}
}

func TestFetchUppercaseMatches(t *testing.T) {
	url, _ := fileServer(t, "abc", "")
	dst := filepath.Join(t.TempDir(), "f")
	sum := sha256Hex("abc")
	_, err := release.Fetch(t.Context(), url, dst, "BA7816BF"+sum[8:])
	require.NoError(t, err)
	assert.Equal(t, "abc", readFile(t, dst))
}

func TestFetchBadChecksumArgument(t *testing.T) {
	_, err := release.Fetch(t.Context(), "http://127.0.0.1:1/x", filepath.Join(t.TempDir(), "f"), "abc")
	var fe *release.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, []string{"sha256"}, fe.Fields)
}

func TestFetchCancel(t *testing.T) {
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	dst := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(dst, []byte("old"), 0o644))
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-started; cancel() }()
	_, err := release.Fetch(ctx, srv.URL, dst, sha256Hex("x"))
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "old", readFile(t, dst))
	assert.Equal(t, []string{"f"}, files(t, dir))
}

func ptr(s string) *string { return &s }

func TestReceiverFilesHidesUploadsInProgress(t *testing.T) {
	rc, dir := newReceiver(t, release.ReceiverConfig{})
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "app/1.0.0"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app/1.0.0/release.tgz"), []byte("stored"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app/1.0.0/release.env"),
		[]byte("PRODUCT='app'\nVERSION='1.0.0'\nSIZE='6'\nSHA256='"+sha256Hex("stored")+"'\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".incoming/partial"), []byte("partial"), 0o644))
	srv := httptest.NewServer(rc.Files())
	t.Cleanup(srv.Close)
	for path, want := range map[string]int{
		"/app/1.0.0/release.tgz":    200,
		"/.incoming/partial":        404,
		"/app/../.incoming/partial": 404,
	} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, path)
	}
}
