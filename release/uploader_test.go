package release_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/releasetest"
)

var md = release.Metadata{Product: "app", Version: "1.0.0", Tag: "v1.0.0", Build: "42", Revision: "7",
	Commit: "abc123", Log: "it's $(done)\n`really`", RPMs: true}

func TestUploaderUploadsAndReports(t *testing.T) {
	srv := releasetest.NewServer(t)
	content := strings.Repeat("0123456789abcdef", 100_000) // 1.6 MB, many chunks
	path := filepath.Join(t.TempDir(), "release.tgz")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))

	var calls, last, total int64
	up := srv.Uploader()
	up.Progress = func(m release.Metadata, sent, tot int64) {
		assert.Equal(t, md, m, "Progress reports the upload")
		assert.GreaterOrEqual(t, sent, last, "progress went backwards")
		calls++
		last, total = sent, tot
	}
	rcpt, err := up.UploadFile(t.Context(), md, path)
	require.NoError(t, err)
	assert.Equal(t, release.Receipt{Product: "app", Version: "1.0.0", SHA256: sha256Hex(content), Size: int64(len(content)), Created: true}, rcpt)
	assert.Equal(t, int64(len(content)), last)
	assert.Equal(t, int64(len(content)), total)
	assert.Greater(t, calls, int64(1))

	rels := srv.Releases()
	require.Len(t, rels, 1)
	assert.Equal(t, md, rels[0].Metadata, "metadata as the hook saw it")
	assert.Equal(t, content, readFile(t, rels[0].Tarball))

	last = 0
	again, err := up.UploadFile(t.Context(), md, path)
	require.NoError(t, err)
	assert.False(t, again.Created, "a re-upload reports the release as already stored")
	assert.Len(t, srv.Releases(), 1)
}

func TestUploaderUnknownSize(t *testing.T) {
	srv := releasetest.NewServer(t)
	var gotTotal int64
	up := srv.Uploader()
	up.Progress = func(_ release.Metadata, _, total int64) { gotTotal = total }
	// A plain io.Reader of unknown length goes out chunked.
	rcpt, err := up.Upload(t.Context(), md, io.MultiReader(strings.NewReader("abc"), strings.NewReader("def")), -1)
	require.NoError(t, err)
	assert.Equal(t, sha256Hex("abcdef"), rcpt.SHA256)
	assert.Equal(t, int64(-1), gotTotal)
}

func TestUploaderErrors(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*releasetest.Server, *release.Uploader) release.Metadata
		wantIs error
	}{
		{"wrong secret", func(_ *releasetest.Server, u *release.Uploader) release.Metadata {
			u.Secret = "wrong"
			return md
		}, release.ErrUnauthorized},
		{"conflict", func(s *releasetest.Server, u *release.Uploader) release.Metadata {
			_, err := u.Upload(context.Background(), md, strings.NewReader("first"), 5)
			require.NoError(t, err)
			return md
		}, release.ErrConflict},
		{"tampered in transit", func(s *releasetest.Server, _ *release.Uploader) release.Metadata {
			s.SetTamper(true)
			return md
		}, release.ErrChecksumMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := releasetest.NewServer(t)
			up := srv.Uploader()
			m := tt.setup(srv, up)
			_, err := up.Upload(t.Context(), m, strings.NewReader("the release"), 11)
			assert.ErrorIs(t, err, tt.wantIs)
			if errors.Is(err, release.ErrConflict) {
				assert.Equal(t, "first", readFile(t, filepath.Join(srv.Dir, "app/1.0.0/release.tgz")))
				return
			}
			assert.Empty(t, files(t, srv.Dir))
		})
	}
}

func TestUploaderFieldError(t *testing.T) {
	srv := releasetest.NewServer(t)
	_, err := srv.Uploader().Upload(t.Context(), release.Metadata{Product: "../etc", Version: "1.0/x"}, strings.NewReader("x"), 1)
	var fe *release.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, []string{"product", "version"}, fe.Fields)
	assert.Equal(t, `release: invalid metadata: product "../etc" must start with a letter or digit, not '.'; `+
		`version "1.0/x" has '/' at index 3 (allowed: letters, digits and . _ + ~ -)`, err.Error())
	assert.Empty(t, srv.Releases())
}

func TestUploaderTooLarge(t *testing.T) {
	rc, dir := newReceiver(t, release.ReceiverConfig{MaxSize: 1 << 20})
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	up := &release.Uploader{URL: srv.URL, Secret: testSecret}
	for _, size := range []int64{8 << 20, -1} { // with Content-Length, and chunked
		_, err := up.Upload(t.Context(), md, io.LimitReader(zeros{}, 8<<20), size)
		assert.ErrorIs(t, err, release.ErrTooLarge, "size %d", size)
	}
	assert.Empty(t, files(t, dir))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestUploaderStatusError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":"release: hook failed","fields":[]}`)
	}))
	t.Cleanup(srv.Close)
	_, err := (&release.Uploader{URL: srv.URL, Secret: "s"}).Upload(t.Context(), md, strings.NewReader("x"), 1)
	var se *release.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 500, se.Code)
	assert.Equal(t, "release: hook failed", se.Message)
}

// A server that answers 201 with another checksum has not confirmed ours.
func TestUploaderRejectsWrongReceipt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"product":"app","version":"1.0.0","sha256":"`+sha256Hex("other")+`","size":1}`)
	}))
	t.Cleanup(srv.Close)
	_, err := (&release.Uploader{URL: srv.URL, Secret: "s"}).Upload(t.Context(), md, strings.NewReader("x"), 1)
	assert.ErrorIs(t, err, release.ErrChecksumMismatch)
}

// blockingReader yields n bytes, signals, then blocks until ctx is done.
type blockingReader struct {
	ctx     context.Context
	n       int
	reached chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.n == 0 {
		close(b.reached)
		<-b.ctx.Done()
		return 0, b.ctx.Err()
	}
	m := min(len(p), b.n)
	clear(p[:m])
	b.n -= m
	return m, nil
}

func TestUploaderCancel(t *testing.T) {
	rc, dir := newReceiver(t, release.ReceiverConfig{})
	handled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.ServeHTTP(w, r)
		close(handled)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	br := &blockingReader{ctx: ctx, n: 1 << 20, reached: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		_, err := (&release.Uploader{URL: srv.URL, Secret: testSecret}).Upload(ctx, md, br, 4<<20)
		errc <- err
	}()
	<-br.reached
	cancel()
	err := <-errc
	assert.ErrorIs(t, err, context.Canceled)
	<-handled
	assert.Empty(t, files(t, dir), "a cancelled upload left files on the server")
}

func TestUploaderNeedsURLAndSecret(t *testing.T) {
	_, err := (&release.Uploader{}).Upload(t.Context(), md, bytes.NewReader(nil), 0)
	assert.Error(t, err)
}

// With a known size the uploader asks for 100-continue, so a receiver that
// refuses the secret or the size does so before any of the file is sent.
func TestUploaderRefusedBeforeSending(t *testing.T) {
	rc, _ := newReceiver(t, release.ReceiverConfig{MaxSize: 1 << 20})
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		name   string
		secret release.Secret
		size   int64
		want   error
	}{
		{"wrong secret", "wrong", 8 << 20, release.ErrUnauthorized},
		{"too large", testSecret, 8 << 20, release.ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var sent int64
			up := &release.Uploader{URL: srv.URL, Secret: tt.secret, Progress: func(_ release.Metadata, n, _ int64) { sent = n }}
			_, err := up.Upload(t.Context(), md, io.LimitReader(zeros{}, tt.size), tt.size)
			assert.ErrorIs(t, err, tt.want)
			assert.Zero(t, sent, "bytes of the file sent before the refusal")
		})
	}
}
