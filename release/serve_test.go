package release_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/releasetest"
)

// CheckServing asserts what Files promises for a stored release at base:
// ETag and Repr-Digest of the whole file on 200 and 206, Range, If-Range
// and If-None-Match. The S3 store's tests run it too.
func checkServing(t *testing.T, url, content string) {
	t.Helper()
	sum := sha256.Sum256([]byte(content))
	wantDigest := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	wantETag := `"` + sha256Hex(content) + `"`
	do := func(hdr ...string) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		for i := 0; i < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	resp, body := do()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, content, body)
	assert.Equal(t, wantETag, resp.Header.Get("ETag"))
	assert.Equal(t, wantDigest, resp.Header.Get("Repr-Digest"))
	assert.Equal(t, "bytes", resp.Header.Get("Accept-Ranges"))

	resp, body = do("Range", "bytes=3-")
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, content[3:], body)
	assert.Equal(t, wantDigest, resp.Header.Get("Repr-Digest"), "Repr-Digest is of the whole file on 206")

	resp, body = do("Range", "bytes=1-2", "If-Range", wantETag)
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, content[1:3], body)
	resp, body = do("Range", "bytes=1-2", "If-Range", `"other"`)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "If-Range with another ETag gets the whole file")
	assert.Equal(t, content, body)

	resp, _ = do("If-None-Match", wantETag)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
}

func TestFilesServesWithDigestAndRange(t *testing.T) {
	rc, _ := newReceiver(t, release.ReceiverConfig{})
	content := strings.Repeat("0123456789", 1000)
	body, ct := form(t, goodForm(content)...)
	require.Equal(t, http.StatusCreated, post(t, rc, body, ct, testSecret).Status)
	srv := httptest.NewServer(rc.Files())
	t.Cleanup(srv.Close)
	checkServing(t, srv.URL+"/app/1.0.0/release.tgz", content)

	resp, err := http.Get(srv.URL + "/app/1.0.0/release.env")
	require.NoError(t, err)
	env, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(env), "SHA256='"+sha256Hex(content)+"'")
	assert.Equal(t, `"`+sha256Hex(string(env))+`"`, resp.Header.Get("ETag"))

	for _, path := range []string{"/app/2.0.0/release.tgz", "/app/1.0.0/other", "/app/1.0.0/.hook-pending"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
	resp, err = http.Post(srv.URL+"/app/1.0.0/release.tgz", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// TestDirStoreContract runs the Store checker on the default store.
func TestDirStoreContract(t *testing.T) {
	releasetest.TestStore(t, func(t *testing.T) release.Store { return release.DirStore{Dir: t.TempDir()} })
}
