package release_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
)

const testSecret = "s3cret-for-tests"

// field is one multipart part; file parts carry content and a filename.
type field struct {
	name, value string
	file        bool
}

func f(name, value string) field     { return field{name: name, value: value} }
func fileField(content string) field { return field{name: "file", value: content, file: true} }

func sha256Hex(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
func md5Hex(s string) string    { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

// form builds a multipart body with the parts in the given order.
func form(tb testing.TB, parts ...field) (body []byte, contentType string) {
	tb.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		if p.file {
			w, err := mw.CreateFormFile(p.name, "release.tgz")
			require.NoError(tb, err)
			w.Write([]byte(p.value))
			continue
		}
		require.NoError(tb, mw.WriteField(p.name, p.value))
	}
	require.NoError(tb, mw.Close())
	return b.Bytes(), mw.FormDataContentType()
}

// goodForm is a valid modern upload of content as app/1.0.0.
func goodForm(content string, extra ...field) []field {
	parts := []field{f("product", "app"), f("version", "1.0.0")}
	parts = append(parts, extra...)
	return append(parts, fileField(content), f("sha256", sha256Hex(content)))
}

type reply struct {
	Status  int
	Error   string   `json:"error"`
	Fields  []string `json:"fields"`
	Product string   `json:"product"`
	Version string   `json:"version"`
	SHA256  string   `json:"sha256"`
	Size    int64    `json:"size"`
	raw     map[string]any
}

// post sends a body to h in-process and decodes the JSON reply.
func post(tb testing.TB, h http.Handler, body []byte, contentType string, bearer string) reply {
	tb.Helper()
	req := httptest.NewRequest(http.MethodPost, "/release", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var r reply
	require.Equal(tb, "application/json", rec.Header().Get("Content-Type"), "reply body: %s", rec.Body.String())
	require.NoError(tb, json.Unmarshal(rec.Body.Bytes(), &r), "reply body: %s", rec.Body.String())
	require.NoError(tb, json.Unmarshal(rec.Body.Bytes(), &r.raw))
	r.Status = rec.Code
	return r
}

// newReceiver returns a receiver storing into a new temporary directory.
func newReceiver(tb testing.TB, cfg release.ReceiverConfig) (*release.Receiver, string) {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	if cfg.Secrets == nil {
		cfg.Secrets = []release.Secret{testSecret}
	}
	rc, err := release.NewReceiver(cfg)
	require.NoError(tb, err)
	return rc, cfg.Dir
}

// files lists the regular files under dir, relative to it.
func files(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	require.NoError(tb, err)
	sort.Strings(out)
	return out
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	require.NoError(tb, err)
	return string(b)
}
