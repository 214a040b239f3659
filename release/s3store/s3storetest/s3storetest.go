// Package s3storetest runs a real S3-compatible server (versitygw) on
// loopback for tests of code that uses release/s3store:
//
//	gw := s3storetest.NewGateway(t) // killed by t.Cleanup
//	st, err := s3store.New(s3store.Config{Client: gw.Client(t), Bucket: gw.Bucket})
//
// The binary comes from $OPSKIT_VERSITYGW or /root/.cache/opskit/bin/versitygw
// (`go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`). Without
// it NewGateway skips the test, or fails it when CI=true or
// OPSKIT_REQUIRE_INTEGRATION=1.
package s3storetest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/opskit/opskit/internal/testenv"
)

// DefaultBinary is where .ci/run builds versitygw.
const DefaultBinary = "/root/.cache/opskit/bin/versitygw"

// Gateway is a running versitygw with one empty bucket.
type Gateway struct {
	Endpoint  string // "127.0.0.1:PORT", plain HTTP
	AccessKey string
	SecretKey string
	Bucket    string
	Dir       string // the posix backend's directory: Dir/<bucket>/<key>
}

// Binary returns the versitygw path, skipping or failing tb without one.
func Binary(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{os.Getenv("OPSKIT_VERSITYGW"), DefaultBinary} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if testenv.Required() {
		tb.Fatal("versitygw is required (CI=true or OPSKIT_REQUIRE_INTEGRATION=1) but neither $OPSKIT_VERSITYGW nor " + DefaultBinary + " exists; see .ci/run")
	}
	tb.Skip("versitygw not found; set OPSKIT_VERSITYGW or build it as .ci/run does")
	return ""
}

// NewGateway starts versitygw on a free loopback port over a temporary
// directory and creates the bucket "releases". The process is killed by
// tb.Cleanup.
func NewGateway(tb testing.TB) *Gateway {
	tb.Helper()
	bin := Binary(tb)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	root := tb.TempDir()
	iam, data := filepath.Join(root, "iam"), filepath.Join(root, "data")
	for _, d := range []string{iam, data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	gw := &Gateway{Endpoint: addr, AccessKey: "opskit-test", SecretKey: "opskit-test-secret-key", Bucket: "releases", Dir: data}
	cmd := exec.Command(bin, "--port", addr, "--iam-dir", iam, "posix", data)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+gw.AccessKey, "ROOT_SECRET_KEY="+gw.SecretKey)
	out := &syncBuilder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	mc := gw.Client(tb)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = mc.MakeBucket(tb.Context(), gw.Bucket, minio.MakeBucketOptions{})
		if err == nil {
			return gw
		}
		if time.Now().After(deadline) {
			tb.Fatalf("versitygw did not come up: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns a minio client for the gateway (no TrailingHeaders, as
// s3store needs).
func (g *Gateway) Client(tb testing.TB) *minio.Client {
	tb.Helper()
	mc, err := minio.New(g.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(g.AccessKey, g.SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		tb.Fatal(err)
	}
	return mc
}

type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
