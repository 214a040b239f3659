package release_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
)

// tusServer serves a receiver's upload API and resumable endpoint and
// counts the file bytes each PATCH delivered.
type tusServer struct {
	url     string
	dir     string
	rc      *release.Receiver
	mu      sync.Mutex
	patches []int64
	hooks   int
	close   func() // stops the server, waiting for requests in flight
	cutAt   int64  // if set, the next PATCH's connection drops after this many bytes
}

func newTusServer(t *testing.T, cfg release.ReceiverConfig) *tusServer {
	t.Helper()
	s := &tusServer{}
	cfg.Hook = func(context.Context, release.Release) error { s.mu.Lock(); s.hooks++; s.mu.Unlock(); return nil }
	s.rc, s.dir = newReceiver(t, cfg)
	uploads := s.rc.Uploads()
	mux := http.NewServeMux()
	mux.Handle("POST /release", s.rc)
	mux.Handle("/release/uploads/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			s.mu.Lock()
			cut := s.cutAt
			s.cutAt = 0
			s.mu.Unlock()
			var body io.Reader = r.Body
			if cut > 0 {
				// After cut bytes the connection drops, as a pulled cable
				// would do it: the client sees its request fail.
				body = &failingReader{r: r.Body, left: cut, onFail: func() {
					if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
						c.Close()
					}
				}}
			}
			cr := &countingReader{r: body}
			r.Body = io.NopCloser(cr)
			defer func() { s.mu.Lock(); s.patches = append(s.patches, int64(cr.n)); s.mu.Unlock() }()
		}
		uploads.ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/release"
	s.close = srv.Close
	return s
}

// failingReader reads left bytes from r, then calls onFail (once) and
// fails.
type failingReader struct {
	r      io.Reader
	left   int64
	onFail func()
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		if f.onFail != nil {
			f.onFail()
			f.onFail = nil
		}
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= int64(n)
	return n, err
}

// TestResumableUpload cuts the connection at 50%: the second attempt sends
// only the rest, and the release is stored, verified and hooked once.
func TestResumableUpload(t *testing.T) {
	s := newTusServer(t, release.ReceiverConfig{})
	content := bytes.Repeat([]byte("resumable release bytes "), 200<<10) // 4.7 MiB
	work := t.TempDir()
	path := filepath.Join(work, "release.tgz")
	require.NoError(t, os.WriteFile(path, content, 0o644))
	state := path + ".upload"
	md := release.Metadata{Product: "app", Version: "1.0.0", Log: "it's resumable"}

	s.cutAt = int64(len(content) / 2)
	up := &release.Uploader{URL: s.url, Secret: testSecret}
	_, err := up.UploadFileResumable(t.Context(), md, path, state)
	require.Error(t, err, "the first attempt was cut")
	assert.FileExists(t, state, "the state is kept for the next attempt")
	assert.NoDirExists(t, filepath.Join(s.dir, "app"), "nothing stored yet")

	rcpt, err := up.UploadFileResumable(t.Context(), md, path, state)
	require.NoError(t, err)
	assert.True(t, rcpt.Created)
	assert.Equal(t, sha256Hex(string(content)), rcpt.SHA256)
	assert.NoFileExists(t, state)
	assert.Equal(t, string(content), readFile(t, filepath.Join(s.dir, "app/1.0.0/release.tgz")))
	env := readFile(t, filepath.Join(s.dir, "app/1.0.0/release.env"))
	assert.Contains(t, env, `LOG='it'\''s resumable'`)
	assert.Equal(t, stored, files(t, s.dir), "no upload state left")

	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(t, s.patches, 2)
	assert.Equal(t, []int64{int64(len(content) / 2), int64(len(content) - len(content)/2)}, s.patches,
		"the second attempt sent only the rest")
	assert.Equal(t, 1, s.hooks)
}

// A resumable upload that survives a restart of the receiver continues.
func TestResumableUploadSurvivesRestart(t *testing.T) {
	s := newTusServer(t, release.ReceiverConfig{})
	content := bytes.Repeat([]byte("x"), 3<<20)
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, content, 0o644))
	md := release.Metadata{Product: "app", Version: "2.0.0"}
	s.cutAt = 1 << 20
	up := &release.Uploader{URL: s.url, Secret: testSecret}
	_, err := up.UploadFileResumable(t.Context(), md, path, path+".upload")
	require.Error(t, err)

	// A new Receiver on the same directory (a restarted server), once the
	// old one has finished with the cut request.
	s.close()
	s2 := newTusServer(t, release.ReceiverConfig{Dir: s.dir})
	up = &release.Uploader{URL: s2.url, Secret: testSecret}
	// The state names the old server's URL; point it at the new one.
	data := readFile(t, path+".upload")
	require.NoError(t, os.WriteFile(path+".upload", []byte(strings.ReplaceAll(data, strings.TrimSuffix(s.url, "/release"), strings.TrimSuffix(s2.url, "/release"))), 0o600))
	rcpt, err := up.UploadFileResumable(t.Context(), md, path, path+".upload")
	require.NoError(t, err)
	assert.True(t, rcpt.Created)
	s2.mu.Lock()
	defer s2.mu.Unlock()
	assert.Equal(t, []int64{int64(len(content) - 1<<20)}, s2.patches, "the restarted server received only the rest")
}

func tusReq(t *testing.T, method, url string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+testSecret)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func tusMeta(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

// TestTusProtocol checks the protocol edges: refused creations, offset
// conflicts, chunk checksums, a whole-file mismatch and termination.
func TestTusProtocol(t *testing.T) {
	s := newTusServer(t, release.ReceiverConfig{MaxSize: 1 << 20})
	base := s.url + "/uploads/"
	content := []byte("0123456789")
	good := tusMeta("product", "app", "version", "1.0.0", "sha256", sha256Hex(string(content)))

	resp := tusReq(t, http.MethodOptions, base, nil)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Tus-Extension"), "checksum")

	for name, tt := range map[string]struct {
		hdr  []string
		want int
	}{
		"no secret":        {[]string{"Authorization", "", "Upload-Length", "10", "Upload-Metadata", good}, 401},
		"no tus version":   {[]string{"Tus-Resumable", "", "Upload-Length", "10", "Upload-Metadata", good}, 412},
		"too large":        {[]string{"Upload-Length", strconv.Itoa(2 << 20), "Upload-Metadata", good}, 413},
		"no sha256":        {[]string{"Upload-Length", "10", "Upload-Metadata", tusMeta("product", "app", "version", "1")}, 400},
		"bad version":      {[]string{"Upload-Length", "10", "Upload-Metadata", tusMeta("product", "app", "version", "../x", "sha256", sha256Hex("x"))}, 400},
		"no length":        {[]string{"Upload-Metadata", good}, 400},
		"bad metadata b64": {[]string{"Upload-Length", "10", "Upload-Metadata", "product !!!"}, 400},
	} {
		resp := tusReq(t, http.MethodPost, base, nil, tt.hdr...)
		assert.Equal(t, tt.want, resp.StatusCode, name)
	}

	resp = tusReq(t, http.MethodPost, base, nil, "Upload-Length", "10", "Upload-Metadata", good)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc := strings.TrimSuffix(s.url, "/release") + resp.Header.Get("Location")
	assert.NotEmpty(t, resp.Header.Get("Upload-Expires"))
	patch := func(offset int, body []byte, hdr ...string) *http.Response {
		return tusReq(t, http.MethodPatch, loc, body, append([]string{"Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.Itoa(offset)}, hdr...)...)
	}
	assert.Equal(t, http.StatusNoContent, patch(0, content[:4]).StatusCode)
	resp = patch(2, content[2:6])
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "wrong offset")
	assert.Equal(t, "4", resp.Header.Get("Upload-Offset"))
	bad := sha256.Sum256([]byte("not it"))
	assert.Equal(t, 460, patch(4, content[4:8], "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(bad[:])).StatusCode)
	resp = tusReq(t, http.MethodHead, loc, nil)
	assert.Equal(t, "4", resp.Header.Get("Upload-Offset"), "a chunk with a wrong checksum is not kept")
	sum := sha256.Sum256(content[4:8])
	assert.Equal(t, http.StatusNoContent, patch(4, content[4:8], "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(sum[:])).StatusCode)
	assert.Equal(t, http.StatusRequestEntityTooLarge, patch(8, []byte("89and more")).StatusCode)
	assert.Equal(t, http.StatusCreated, patch(8, content[8:]).StatusCode)
	assert.Equal(t, string(content), readFile(t, filepath.Join(s.dir, "app/1.0.0/release.tgz")))
	assert.Equal(t, http.StatusNotFound, tusReq(t, http.MethodHead, loc, nil).StatusCode, "finished uploads are gone")

	// The whole file does not match the announced sha256: 422, nothing stored.
	resp = tusReq(t, http.MethodPost, base, nil, "Upload-Length", "3", "Upload-Metadata",
		tusMeta("product", "app", "version", "2.0.0", "sha256", sha256Hex("abc")))
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc = strings.TrimSuffix(s.url, "/release") + resp.Header.Get("Location")
	assert.Equal(t, http.StatusUnprocessableEntity, patch(0, []byte("abd")).StatusCode)
	assert.NoDirExists(t, filepath.Join(s.dir, "app/2.0.0"))

	// Termination.
	resp = tusReq(t, http.MethodPost, base, nil, "Upload-Length", "3", "Upload-Metadata",
		tusMeta("product", "app", "version", "3.0.0", "sha256", sha256Hex("abc")))
	loc = strings.TrimSuffix(s.url, "/release") + resp.Header.Get("Location")
	assert.Equal(t, http.StatusNoContent, tusReq(t, http.MethodDelete, loc, nil).StatusCode)
	assert.Equal(t, http.StatusNotFound, tusReq(t, http.MethodHead, loc, nil).StatusCode)
	assert.Equal(t, stored, files(t, s.dir), "no upload state left")
}

// Unfinished uploads expire after ResumableExpiry.
func TestTusExpiry(t *testing.T) {
	s := newTusServer(t, release.ReceiverConfig{ResumableExpiry: 1})
	resp := tusReq(t, http.MethodPost, s.url+"/uploads/", nil, "Upload-Length", "3", "Upload-Metadata",
		tusMeta("product", "app", "version", "1", "sha256", sha256Hex("abc")))
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	loc := strings.TrimSuffix(s.url, "/release") + resp.Header.Get("Location")
	assert.Equal(t, http.StatusNotFound, tusReq(t, http.MethodHead, loc, nil).StatusCode)
	assert.Empty(t, files(t, s.dir))
}
