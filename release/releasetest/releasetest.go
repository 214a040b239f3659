// Package releasetest runs a release API on loopback for tests and demos:
// a real release.Receiver storing into a temporary directory, which also
// serves the stored files for release.Fetch, records every release its
// hook saw, and can corrupt uploads in transit.
//
//	srv := releasetest.NewServer(t) // closed by t.Cleanup
//	up := srv.Uploader()
//	rcpt, err := up.UploadFile(ctx, release.Metadata{Product: "app", Version: "1.0.0"}, "release.tgz")
package releasetest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opskit/opskit/release"
)

// DefaultSecret is the secret NewServer accepts.
const DefaultSecret release.Secret = "releasetest-secret"

// Server is a release API on 127.0.0.1. POST URL+"/release" reaches a real
// release.Receiver, URL+"/release/uploads/" its resumable endpoint; GET URL+"/releases/<product>/<version>/release.tgz"
// (or release.env) serves what it stored.
type Server struct {
	// URL is the base URL, e.g. "http://127.0.0.1:41234".
	URL string
	// Dir is the directory the receiver stores into.
	Dir string
	// Secret is the accepted upload secret.
	Secret release.Secret

	srv      *httptest.Server
	tamper   atomic.Bool
	hookErr  atomic.Pointer[error]
	mu       sync.Mutex
	releases []release.Release
	ownDir   bool
}

// New starts a Server that accepts secret and stores into a new temporary
// directory. The caller must call Close, which also removes the directory.
func New(secret release.Secret) (*Server, error) {
	dir, err := os.MkdirTemp("", "releasetest-*")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Secret: secret, ownDir: true}
	rc, err := release.NewReceiver(release.ReceiverConfig{
		Dir:     dir,
		Secrets: []release.Secret{secret},
		Hook:    s.hook,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /release", s.tamperer(rc))
	mux.Handle("/release/uploads/", rc.Uploads())
	mux.Handle("GET /releases/", http.StripPrefix("/releases", rc.Files()))
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s, nil
}

// NewServer starts a Server accepting DefaultSecret and registers Close
// with tb.Cleanup.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := New(DefaultSecret)
	if err != nil {
		tb.Fatalf("releasetest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.srv.Close()
	if s.ownDir {
		os.RemoveAll(s.Dir)
	}
}

// UploadURL is the receiver's endpoint, URL+"/release".
func (s *Server) UploadURL() string { return s.URL + "/release" }

// FileURL is where the stored tarball of product/version is served.
func (s *Server) FileURL(product, version string) string {
	return s.URL + "/releases/" + product + "/" + version + "/release.tgz"
}

// Uploader returns an Uploader for this server with its secret.
func (s *Server) Uploader() *release.Uploader {
	return &release.Uploader{URL: s.UploadURL(), Secret: s.Secret}
}

// Releases returns the releases whose hook ran successfully, in order.
func (s *Server) Releases() []release.Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]release.Release(nil), s.releases...)
}

// SetTamper makes the server flip the first byte of each uploaded file in
// transit, before the receiver sees it, while on is true, as a corrupting
// network or a man in the middle would. The receiver then answers 422 and
// stores nothing.
func (s *Server) SetTamper(on bool) { s.tamper.Store(on) }

// SetHookError makes the hook fail with err (nil: succeed again).
func (s *Server) SetHookError(err error) {
	if err == nil {
		s.hookErr.Store(nil)
		return
	}
	s.hookErr.Store(&err)
}

func (s *Server) hook(_ context.Context, r release.Release) error {
	if p := s.hookErr.Load(); p != nil {
		return *p
	}
	s.mu.Lock()
	s.releases = append(s.releases, r)
	s.mu.Unlock()
	return nil
}

// tamperer flips the first byte of the file part's content when tampering
// is on. It looks for the part in the first 64 KiB of the body.
func (s *Server) tamperer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tamper.Load() {
			head := make([]byte, 64<<10)
			n, _ := io.ReadFull(r.Body, head)
			head = head[:n]
			if i := bytes.Index(head, []byte(`name="file"`)); i >= 0 {
				if j := bytes.Index(head[i:], []byte("\r\n\r\n")); j >= 0 && i+j+4 < len(head) {
					head[i+j+4] ^= 0xff
				}
			}
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		}
		next.ServeHTTP(w, r)
	})
}
