package release_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
)

func reprDigest(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha-256=:" + base64.StdEncoding.EncodeToString(h[:]) + ":"
}

// TestFetchVerifiesReprDigest: without a checksum, Fetch verifies against
// the server's Repr-Digest, and keeps an up-to-date dst without a body.
func TestFetchVerifiesReprDigest(t *testing.T) {
	const content = "release bytes"
	var mu sync.Mutex
	var got []string // "If-None-Match" of each request
	digest := reprDigest(content)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("If-None-Match"))
		mu.Unlock()
		mu.Lock()
		d := digest
		mu.Unlock()
		if d != "" {
			w.Header().Set("Repr-Digest", d)
		}
		w.Header().Set("ETag", `"`+sha256Hex(content)+`"`)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(content))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	dst := filepath.Join(dir, "app.tgz")

	res, err := release.Fetch(t.Context(), srv.URL, dst, "")
	require.NoError(t, err)
	assert.False(t, res.Skipped)
	assert.Equal(t, content, readFile(t, dst))

	res, err = release.Fetch(t.Context(), srv.URL, dst, "")
	require.NoError(t, err)
	assert.True(t, res.Skipped, "dst has the server's digest")

	mu.Lock()
	assert.Equal(t, []string{"", `"` + sha256Hex(content) + `"`}, got, "the second request offers dst's checksum")
	digest = reprDigest("something else") // the server's file is not what it sends
	mu.Unlock()
	require.NoError(t, os.Remove(dst))
	_, err = release.Fetch(t.Context(), srv.URL, dst, "")
	assert.ErrorIs(t, err, release.ErrChecksumMismatch)
	assert.Empty(t, files(t, dir))

	_, err = release.Fetch(t.Context(), srv.URL, dst, sha256Hex(content))
	assert.ErrorIs(t, err, release.ErrChecksumMismatch, "given checksum and Repr-Digest disagree")
	assert.Empty(t, files(t, dir))

	mu.Lock()
	digest = ""
	mu.Unlock()
	_, err = release.Fetch(t.Context(), srv.URL, dst, "")
	var fe *release.FieldError
	require.ErrorAs(t, err, &fe, "no checksum from either side")
	assert.Equal(t, []string{"sha256"}, fe.Fields)
	assert.Empty(t, files(t, dir))
}

// TestFetchResume: the server cuts the first response half way; with
// Resume the second Fetch asks only for the rest (Range, If-Range) and the
// whole file verifies.
func TestFetchResume(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	etag := `"` + sha256Hex(string(content)) + `"`
	var mu sync.Mutex
	var ranges []string
	var sent int64
	first := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range")+"|"+r.Header.Get("If-Range"))
		cut := first
		first = false
		mu.Unlock()
		w.Header().Set("ETag", etag)
		w.Header().Set("Repr-Digest", reprDigest(string(content)))
		if cut {
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.Write(content[:len(content)/2])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		cw := &countWriter{ResponseWriter: w}
		http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(content))
		mu.Lock()
		sent += cw.n
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	dst := filepath.Join(dir, "app.tgz")
	f := &release.Fetcher{Resume: true}

	_, err := f.Fetch(t.Context(), srv.URL, dst, sha256Hex(string(content)))
	require.Error(t, err, "the first response was cut")
	assert.NoFileExists(t, dst)
	kept, err := os.Stat(dst + ".partial")
	require.NoError(t, err, "the interrupted download is kept")
	require.Positive(t, kept.Size())

	res, err := f.Fetch(t.Context(), srv.URL, dst, sha256Hex(string(content)))
	require.NoError(t, err)
	assert.Equal(t, int64(len(content)), res.Size)
	assert.True(t, bytes.Equal(content, []byte(readFile(t, dst))))
	srv.Close() // the handlers are done
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"|", "bytes=" + strconv.FormatInt(kept.Size(), 10) + "-|" + etag}, ranges)
	assert.Equal(t, int64(len(content))-kept.Size(), sent, "the server sent only the rest")
	assert.Equal(t, []string{"app.tgz"}, files(t, dir), "no partial files left")
}

type countWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// A kept partial download whose bytes are wrong fails the final check and
// is removed, so the next Fetch starts over.
func TestFetchResumeCorruptPartial(t *testing.T) {
	content := strings.Repeat("x", 10000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(content))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	dst := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(dst+".partial", []byte(strings.Repeat("y", 100)), 0o600))
	require.NoError(t, os.WriteFile(dst+".partial.etag", []byte(`"v1"`), 0o600))
	f := &release.Fetcher{Resume: true}
	_, err := f.Fetch(t.Context(), srv.URL, dst, sha256Hex(content))
	assert.ErrorIs(t, err, release.ErrChecksumMismatch)
	assert.Empty(t, files(t, dir))
	_, err = f.Fetch(t.Context(), srv.URL, dst, sha256Hex(content))
	require.NoError(t, err)
	assert.Equal(t, content, readFile(t, dst))
}

// TestFetchExistsOrDownload: an existing dst is kept without a request,
// whatever it holds; a missing one is downloaded and verified.
func TestFetchExistsOrDownload(t *testing.T) {
	const content = "fresh"
	url, requests := fileServer(t, content, "")
	dir := t.TempDir()
	dst := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(dst, []byte("changed locally"), 0o644))
	f := &release.Fetcher{Mode: release.ExistsOrDownload}
	res, err := f.Fetch(t.Context(), url, dst, sha256Hex(content))
	require.NoError(t, err)
	assert.True(t, res.Skipped)
	assert.Equal(t, int64(0), requests.Load())
	assert.Equal(t, "changed locally", readFile(t, dst))

	require.NoError(t, os.Remove(dst))
	res, err = f.Fetch(t.Context(), url, dst, sha256Hex(content))
	require.NoError(t, err)
	assert.False(t, res.Skipped)
	assert.Equal(t, content, readFile(t, dst))
	require.NoError(t, os.Remove(dst))
	_, err = f.Fetch(t.Context(), url, dst, sha256Hex("other"))
	assert.ErrorIs(t, err, release.ErrChecksumMismatch)
	assert.NoFileExists(t, dst)
}
