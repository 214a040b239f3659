package releasetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opskit/opskit/release"
)

// TestStore checks that a release.Store keeps the contract the Receiver
// relies on: create-only Put, hook state and Pending, Open with seeking,
// Delete, and, through a real Receiver, "not served until its hook
// succeeded", 409 for other content and 200 for the same. newStore returns
// a new, empty store for each call; the staging directories TestStore
// hands to Put are made with t.TempDir (a DirStore must live on the same
// file system, e.g. in another t.TempDir).
func TestStore(t *testing.T, newStore func(t *testing.T) release.Store) {
	t.Run("PutGetOpenDelete", func(t *testing.T) {
		st := newStore(t)
		ctx := t.Context()
		rel := stage(t, "app", "1.0.0", "0123456789abcdef")
		if _, err := st.Get(ctx, "app", "1.0.0"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Get of a missing release = %v; want fs.ErrNotExist", err)
		}
		if err := st.Put(ctx, rel.Dir, rel, true); err != nil {
			t.Fatalf("Put: %v", err)
		}
		got, err := st.Get(ctx, "app", "1.0.0")
		if err != nil {
			t.Fatalf("Get after Put: %v", err)
		}
		if got.Hook != release.HookPending || got.SHA256 != rel.SHA256 || got.Size != rel.Size || got.Metadata != rel.Metadata {
			t.Errorf("Get after Put(pendingHook) = %+v; want HookPending with %+v", got, rel)
		}
		if p, err := st.Pending(ctx); err != nil || !slices.Contains(p, "app/1.0.0") {
			t.Errorf("Pending() = %v, %v; want app/1.0.0 listed", p, err)
		}
		again := stage(t, "app", "1.0.0", "other content")
		if err := st.Put(ctx, again.Dir, again, true); !errors.Is(err, release.ErrExists) {
			t.Errorf("second Put = %v; want release.ErrExists", err)
		}
		if got, _ := st.Get(ctx, "app", "1.0.0"); got.SHA256 != rel.SHA256 {
			t.Errorf("a refused Put changed the release: sha256 %s", got.SHA256)
		}
		if err := st.HookDone(ctx, "app", "1.0.0"); err != nil {
			t.Fatalf("HookDone: %v", err)
		}
		if got, err := st.Get(ctx, "app", "1.0.0"); err != nil || got.Hook != release.HookDone {
			t.Errorf("Get after HookDone = %+v, %v; want HookDone", got, err)
		}
		if p, _ := st.Pending(ctx); slices.Contains(p, "app/1.0.0") {
			t.Errorf("Pending() after HookDone = %v", p)
		}
		f, err := st.Open(ctx, "app", "1.0.0", release.TarballName)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if f.Size() != rel.Size {
			t.Errorf("Open().Size() = %d; want %d", f.Size(), rel.Size)
		}
		if _, err := f.Seek(10, io.SeekStart); err != nil {
			t.Errorf("Seek: %v", err)
		}
		if b, err := io.ReadAll(f); err != nil || string(b) != "abcdef" {
			t.Errorf("read after Seek(10) = %q, %v; want %q", b, err, "abcdef")
		}
		f.Close()
		if _, err := st.Open(ctx, "app", "1.0.0", "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open of a missing file = %v; want fs.ErrNotExist", err)
		}
		if err := st.Delete(ctx, "app", "1.0.0"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := st.Get(ctx, "app", "1.0.0"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get after Delete = %v; want fs.ErrNotExist", err)
		}
		if err := st.Delete(ctx, "app", "1.0.0"); err != nil {
			t.Errorf("Delete of a missing release = %v; want nil", err)
		}
		done := stage(t, "app", "2.0.0", "no hook")
		if err := st.Put(ctx, done.Dir, done, false); err != nil {
			t.Fatalf("Put(no hook): %v", err)
		}
		if got, err := st.Get(ctx, "app", "2.0.0"); err != nil || got.Hook != release.HookDone {
			t.Errorf("Get after Put(no hook) = %+v, %v; want HookDone", got, err)
		}
	})

	t.Run("Receiver", func(t *testing.T) {
		st := newStore(t)
		entered, proceed := make(chan struct{}), make(chan error)
		rc, err := release.NewReceiver(release.ReceiverConfig{Dir: t.TempDir(), Store: st, Secrets: []release.Secret{DefaultSecret},
			Hook: func(context.Context, release.Release) error {
				entered <- struct{}{}
				return <-proceed
			}})
		if err != nil {
			t.Fatal(err)
		}
		up := httptest.NewServer(rc)
		t.Cleanup(up.Close)
		files := httptest.NewServer(rc.Files())
		t.Cleanup(files.Close)
		u := &release.Uploader{URL: up.URL, Secret: DefaultSecret}
		send := func(content string) (release.Receipt, error) {
			return u.Upload(context.Background(), release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader(content), int64(len(content)))
		}
		status := func() int {
			resp, err := http.Get(files.URL + "/app/1.0.0/release.tgz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		for _, hookErr := range []error{errors.New("hook failed"), nil} {
			done := make(chan error, 1)
			go func() { _, err := send("tarball"); done <- err }()
			<-entered
			if got := status(); got != http.StatusNotFound {
				t.Errorf("GET while the hook runs = %d; want 404", got)
			}
			proceed <- hookErr
			err := <-done
			if hookErr != nil {
				if err == nil || status() != http.StatusNotFound {
					t.Errorf("failed hook: upload error %v, GET %d; want an error and 404", err, status())
				}
				continue
			}
			if err != nil || status() != http.StatusOK {
				t.Errorf("hook succeeded: upload error %v, GET %d; want nil and 200", err, status())
			}
		}
		if rcpt, err := send("tarball"); err != nil || rcpt.Created {
			t.Errorf("identical re-upload = %+v, %v; want 200 without the hook", rcpt, err)
		}
		if _, err := send("other"); !errors.Is(err, release.ErrConflict) {
			t.Errorf("upload of other content = %v; want release.ErrConflict", err)
		}
	})
}

// stage writes a staging directory holding content as release.tgz and a
// release.env, and returns the release describing it (Dir is the stage).
func stage(t *testing.T, product, version, content string) release.Release {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256([]byte(content))
	rel := release.Release{Metadata: release.Metadata{Product: product, Version: version, Log: "it's a test"},
		SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content)), Dir: dir}
	env := "PRODUCT='" + product + "'\nVERSION='" + version + "'\nLOG='it'\\''s a test'\nRPMS='0'\nSIZE='" +
		strconv.FormatInt(rel.Size, 10) + "'\nSHA256='" + rel.SHA256 + "'\nMD5=''\n"
	if err := os.WriteFile(filepath.Join(dir, release.TarballName), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, release.EnvName), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	return rel
}
