package gitlabtest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/opskit/opskit/gitlabx"
)

// TestVersionSource checks that src, a gitlabx.VersionSource of your own,
// keeps the contract gitlabx.VersionCheck relies on:
//
//   - with files holding a version (path → content at ref "main"), Version
//     returns want;
//   - with no files, or with a ref that does not exist, the error wraps
//     gitlabx.ErrVersionNotFound, so the check can write a clear note;
//   - any other error from the FileReader (a GitLab 5xx, say) comes back
//     wrapped, not turned into "not found", so the check retries instead of
//     telling the merge request that its version file is missing;
//   - a cancelled context ends the call with an error for which
//     errors.Is(err, context.Canceled) holds;
//   - String names the source, and concurrent calls are safe.
//
// The ready-made sources (VersionFile, VersionRegexp, PackageJSON) pass it.
func TestVersionSource(t *testing.T, src gitlabx.VersionSource, files map[string]string, want string) {
	t.Helper()
	if src.String() == "" {
		t.Errorf("%T.String() is empty; want a name for notes", src)
	}
	found := mapFiles{ref: "main", files: files}
	ctx := t.Context()

	got, err := src.Version(ctx, found, "main")
	if err != nil || got != want {
		t.Errorf("%v: Version(main) = %q, %v; want %q", src, got, err, want)
	}

	for name, fr := range map[string]gitlabx.FileReader{
		"no files":        mapFiles{ref: "main"},
		"ref not present": found,
	} {
		ref := "main"
		if name == "ref not present" {
			ref = "deleted-branch"
		}
		if v, err := src.Version(ctx, fr, ref); !errors.Is(err, gitlabx.ErrVersionNotFound) {
			t.Errorf("%v: Version with %s = %q, %v; want an error wrapping gitlabx.ErrVersionNotFound", src, name, v, err)
		}
	}

	boom := errors.New("gitlabtest: injected 502 from the files API")
	if v, err := src.Version(ctx, failingFiles{err: boom}, "main"); !errors.Is(err, boom) || errors.Is(err, gitlabx.ErrVersionNotFound) {
		t.Errorf("%v: Version when the FileReader fails = %q, %v; want the reader's error wrapped, not ErrVersionNotFound", src, v, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if v, err := src.Version(cctx, found, "main"); !errors.Is(err, context.Canceled) {
		t.Errorf("%v: Version with a cancelled context = %q, %v; want an error wrapping context.Canceled", src, v, err)
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got, err := src.Version(ctx, found, "main"); err != nil || got != want {
				t.Errorf("%v: concurrent Version(main) = %q, %v; want %q", src, got, err, want)
			}
		})
	}
	wg.Wait()
}

// mapFiles serves files at one ref, honouring ctx as the API client does.
type mapFiles struct {
	ref   string
	files map[string]string
}

func (m mapFiles) ReadFile(ctx context.Context, ref, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, ok := m.files[path]
	if !ok || ref != m.ref {
		return nil, gitlabx.ErrVersionNotFound
	}
	return []byte(c), nil
}

type failingFiles struct{ err error }

func (f failingFiles) ReadFile(context.Context, string, string) ([]byte, error) { return nil, f.err }
