package s3store_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/releasetest"
	"github.com/opskit/opskit/release/s3store"
	"github.com/opskit/opskit/release/s3store/s3storetest"
)

const testSecret = "s3store-test-secret"

// startGateway runs versitygw and returns its endpoint; bucket is its bucket.
func startGateway(t *testing.T) string {
	t.Helper()
	gw := s3storetest.NewGateway(t)
	return gw.Endpoint
}

const bucket = "releases"

func client(t testing.TB, addr string) *minio.Client {
	t.Helper()
	gw := &s3storetest.Gateway{Endpoint: addr, AccessKey: "opskit-test", SecretKey: "opskit-test-secret-key"}
	return gw.Client(t)
}

// server is one update server: a Receiver on an S3 store, its own Dir.
type server struct {
	rc    *release.Receiver
	url   string
	files string
	mu    sync.Mutex
	hooks []string // "version sha256" per successful hook run
}

func newServer(t *testing.T, addr, id string, hook release.Hook) *server {
	t.Helper()
	st, err := s3store.New(s3store.Config{Client: client(t, addr), Bucket: bucket, ServerID: id})
	require.NoError(t, err)
	s := &server{}
	if hook == nil {
		hook = func(_ context.Context, r release.Release) error {
			b, err := os.ReadFile(r.Tarball)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			s.mu.Lock()
			s.hooks = append(s.hooks, r.Version+" "+hex.EncodeToString(sum[:]))
			s.mu.Unlock()
			return nil
		}
	}
	s.rc, err = release.NewReceiver(release.ReceiverConfig{Dir: t.TempDir(), Store: st, Secrets: []release.Secret{testSecret}, Hook: hook})
	require.NoError(t, err)
	up := httptest.NewServer(s.rc)
	t.Cleanup(up.Close)
	files := httptest.NewServer(s.rc.Files())
	t.Cleanup(files.Close)
	s.url, s.files = up.URL, files.URL
	return s
}

func (s *server) hookRuns() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.hooks...)
}

func upload(ctx context.Context, url, version, content string) (release.Receipt, error) {
	up := &release.Uploader{URL: url, Secret: testSecret}
	return up.Upload(ctx, release.Metadata{Product: "app", Version: version}, strings.NewReader(content), int64(len(content)))
}

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func keys(t *testing.T, mc *minio.Client) []string {
	t.Helper()
	var out []string
	for obj := range mc.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, obj.Err)
		out = append(out, obj.Key)
	}
	sort.Strings(out)
	return out
}

// TestCreateOnlyRace: 16 concurrent uploads of one version, two contents,
// spread over four servers sharing the bucket: exactly one 201, every other
// 200 (same content) or 409 (other content); the object is the winner's
// bytes; the hook ran once, on the winner's server.
func TestCreateOnlyRace(t *testing.T) {
	addr := startGateway(t)
	var servers []*server
	for i := range 4 {
		servers = append(servers, newServer(t, addr, fmt.Sprintf("srv%d", i), nil))
	}
	contents := []string{strings.Repeat("A", 3<<20+1), strings.Repeat("B", 2<<20+7)}
	type result struct {
		content int
		rcpt    release.Receipt
		err     error
	}
	results := make(chan result, 16)
	start := make(chan struct{})
	for i := range 16 {
		go func() {
			<-start
			rcpt, err := upload(t.Context(), servers[i%4].url, "1.0.0", contents[i%2])
			results <- result{i % 2, rcpt, err}
		}()
	}
	close(start)
	created, winner := 0, -1
	var others []result
	for range 16 {
		r := <-results
		switch {
		case r.err == nil && r.rcpt.Created:
			created++
			winner = r.content
		default:
			others = append(others, r)
		}
	}
	require.Equal(t, 1, created, "exactly one upload stores the release")
	for _, r := range others {
		if r.content == winner {
			assert.NoError(t, r.err, "same content as the winner: 200")
		} else {
			assert.ErrorIs(t, r.err, release.ErrConflict, "other content: 409")
		}
	}
	mc := client(t, addr)
	obj, err := mc.GetObject(t.Context(), bucket, "app/1.0.0/release.tgz", minio.GetObjectOptions{})
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	assert.Equal(t, sum(contents[winner]), sum(string(got)), "the stored object is the winner's bytes")
	var hooks []string
	for _, s := range servers {
		hooks = append(hooks, s.hookRuns()...)
	}
	assert.Equal(t, []string{"1.0.0 " + sum(contents[winner])}, hooks, "the hook ran once")
	assert.Equal(t, []string{"app/1.0.0/hook-done", "app/1.0.0/release.env", "app/1.0.0/release.json", "app/1.0.0/release.tgz"}, keys(t, mc))
	for _, s := range servers {
		resp, body := get(t, s.files+"/app/1.0.0/release.tgz")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, contents[winner], body)
	}
}

// TestChecksumMismatchLeavesNothing: the object store itself refuses bytes
// whose SHA-256 differs from the header, and Put leaves no object behind.
func TestChecksumMismatchLeavesNothing(t *testing.T) {
	addr := startGateway(t)
	mc := client(t, addr)
	st, err := s3store.New(s3store.Config{Client: mc, Bucket: bucket, ServerID: "a"})
	require.NoError(t, err)
	stage := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(stage, release.TarballName), []byte("the real bytes"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(stage, release.EnvName), []byte("X='1'\n"), 0o644))
	rel := release.Release{Metadata: release.Metadata{Product: "app", Version: "1.0.0"}, SHA256: sum("other bytes"), Size: 14}
	err = st.Put(t.Context(), stage, rel, true)
	require.Error(t, err)
	assert.NotErrorIs(t, err, release.ErrExists)
	assert.Equal(t, http.StatusBadRequest, minio.ToErrorResponse(errors.Unwrap(err)).StatusCode, "the store refused the bytes: %v", err)
	assert.Empty(t, keys(t, mc), "objects left after a checksum mismatch")
	_, err = st.Get(t.Context(), "app", "1.0.0")
	assert.ErrorIs(t, err, os.ErrNotExist)

	// The right checksum is accepted, and a second create is refused.
	rel.SHA256 = sum("the real bytes")
	require.NoError(t, st.Put(t.Context(), stage, rel, false))
	assert.ErrorIs(t, st.Put(t.Context(), stage, rel, false), release.ErrExists)
}

// TestServingFromS3: Files serves from the bucket with ETag, Repr-Digest
// and Range, and not before the hook succeeded.
func TestServingFromS3(t *testing.T) {
	addr := startGateway(t)
	entered, proceed := make(chan struct{}), make(chan struct{})
	s := newServer(t, addr, "a", func(context.Context, release.Release) error {
		entered <- struct{}{}
		<-proceed
		return nil
	})
	content := strings.Repeat("0123456789", 5000)
	done := make(chan error, 1)
	go func() { _, err := upload(t.Context(), s.url, "1.0.0", content); done <- err }()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("upload ended before the hook ran: %v", err)
	}
	resp, _ := get(t, s.files+"/app/1.0.0/release.tgz")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "served while the hook runs")
	close(proceed)
	require.NoError(t, <-done)

	digest := sha256.Sum256([]byte(content))
	wantDigest := "sha-256=:" + base64.StdEncoding.EncodeToString(digest[:]) + ":"
	resp, body := get(t, s.files+"/app/1.0.0/release.tgz")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, content, body)
	assert.Equal(t, `"`+sum(content)+`"`, resp.Header.Get("ETag"))
	assert.Equal(t, wantDigest, resp.Header.Get("Repr-Digest"))
	resp, body = get(t, s.files+"/app/1.0.0/release.tgz", "Range", "bytes=100-", "If-Range", `"`+sum(content)+`"`)
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, content[100:], body)
	assert.Equal(t, wantDigest, resp.Header.Get("Repr-Digest"))
	resp, body = get(t, s.files+"/app/1.0.0/release.tgz", "Range", "bytes=10-19")
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, content[10:20], body)

	// Fetch verifies against Repr-Digest when no checksum is given.
	dst := filepath.Join(t.TempDir(), "app.tgz")
	res, err := release.Fetch(t.Context(), s.files+"/app/1.0.0/release.tgz", dst, "")
	require.NoError(t, err)
	assert.Equal(t, int64(len(content)), res.Size)
}

const helperEnv = "OPSKIT_S3STORE_HELPER"

// TestS3HookHelper is the server the crash test kills; it runs only as its
// subprocess. Its hook announces itself and hangs.
func TestS3HookHelper(t *testing.T) {
	addr := os.Getenv(helperEnv)
	if addr == "" {
		t.Skip("runs only as a subprocess of TestHookCrashRetry")
	}
	st, err := s3store.New(s3store.Config{Client: client(t, addr), Bucket: bucket, ServerID: "a"})
	require.NoError(t, err)
	rc, err := release.NewReceiver(release.ReceiverConfig{Dir: os.Getenv(helperEnv + "_DIR"), Store: st, Secrets: []release.Secret{testSecret},
		Hook: func(context.Context, release.Release) error {
			fmt.Println("hook running")
			time.Sleep(time.Hour) // until SIGKILL
			return nil
		}})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fmt.Println("listening", ln.Addr())
	http.Serve(ln, rc)
}

// TestHookCrashRetry kills a server (SIGKILL) while the hooks of two new
// releases run. After the restart (same ServerID) neither is served; a
// retry of one upload runs its hook (201), RunPendingHooks the other's.
func TestHookCrashRetry(t *testing.T) {
	addr := startGateway(t)
	for _, version := range []string{"1.0.0", "2.0.0"} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestS3HookHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+addr, helperEnv+"_DIR="+t.TempDir())
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		var url string
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				url = "http://" + a
				break
			}
		}
		require.NotEmpty(t, url, "the helper never listened")
		go upload(context.Background(), url, version, "tarball "+version)
		for sc.Scan() && sc.Text() != "hook running" {
		}
		require.Equal(t, "hook running", sc.Text())
		require.NoError(t, cmd.Process.Kill())
		cmd.Wait()
	}

	s := newServer(t, addr, "a", nil)
	for _, v := range []string{"1.0.0", "2.0.0"} {
		resp, _ := get(t, s.files+"/app/"+v+"/release.tgz")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%s is served though its hook never completed", v)
	}
	rcpt, err := upload(t.Context(), s.url, "1.0.0", "tarball 1.0.0")
	require.NoError(t, err)
	assert.True(t, rcpt.Created, "the retry ran the hook: 201")
	assert.Equal(t, []string{"1.0.0 " + sum("tarball 1.0.0")}, s.hookRuns())

	n, err := s.rc.RunPendingHooks(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []string{"1.0.0 " + sum("tarball 1.0.0"), "2.0.0 " + sum("tarball 2.0.0")}, s.hookRuns())
	for _, v := range []string{"1.0.0", "2.0.0"} {
		resp, body := get(t, s.files+"/app/"+v+"/release.tgz")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "tarball "+v, body)
	}
	rcpt, err = upload(t.Context(), s.url, "2.0.0", "tarball 2.0.0")
	require.NoError(t, err)
	assert.False(t, rcpt.Created, "re-upload after the hook succeeded: 200")
	assert.Len(t, s.hookRuns(), 2)
	_, err = upload(t.Context(), s.url, "2.0.0", "other")
	assert.True(t, errors.Is(err, release.ErrConflict), "other content: 409, got %v", err)
}

// TestCrashRemnant: a release.tgz without release.json (a crash between
// Put's two PUTs) is not a release: with no fresh lease it is removed when
// found and the version can be uploaded; while its own server's lease is
// fresh it is left alone.
func TestCrashRemnant(t *testing.T) {
	addr := startGateway(t)
	mc := client(t, addr)
	put := func(key, body string) {
		_, err := mc.PutObject(t.Context(), bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	st, err := s3store.New(s3store.Config{Client: mc, Bucket: bucket, ServerID: "a"})
	require.NoError(t, err)

	put("app/1.0.0/release.tgz", "half stored")
	put("app/1.0.0/hook-lease.a", "now")
	_, err = st.Get(t.Context(), "app", "1.0.0")
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, keys(t, mc), "app/1.0.0/release.tgz", "left alone while this server's lease is fresh")

	put("app/2.0.0/release.tgz", "half stored")
	_, err = st.Get(t.Context(), "app", "2.0.0")
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.NotContains(t, keys(t, mc), "app/2.0.0/release.tgz", "a remnant without a lease is removed")

	s := newServer(t, addr, "b", nil)
	rcpt, err := upload(t.Context(), s.url, "2.0.0", "the real one")
	require.NoError(t, err)
	assert.True(t, rcpt.Created)
}

// TestStoreContract runs releasetest's Store checker on the S3 store, each
// store under its own prefix of one bucket.
func TestStoreContract(t *testing.T) {
	addr := startGateway(t)
	n := 0
	releasetest.TestStore(t, func(t *testing.T) release.Store {
		n++
		st, err := s3store.New(s3store.Config{Client: client(t, addr), Bucket: bucket, Prefix: fmt.Sprintf("t%d/", n), ServerID: "a"})
		require.NoError(t, err)
		return st
	})
}
