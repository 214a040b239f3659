package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opskit/opskit/internal/atomicfile"
)

// Names of a release's files, in a directory or as the last element of an
// object key.
const (
	TarballName = tarballName // "release.tgz"
	EnvName     = envName     // "release.env"
)

// ErrExists is wrapped by Store.Put when the product/version is already
// stored (by anyone: another upload, another server); Put stored nothing.
var ErrExists = errors.New("release: release already stored")

// HookState says where a stored release stands with its hook.
type HookState int

const (
	// HookDone: the hook succeeded (or none was configured); the release
	// is served.
	HookDone HookState = iota
	// HookPending: the hook has not succeeded and nobody is running it (the
	// process that ran it died): a retry or RunPendingHooks runs it again.
	// The release is not served.
	HookPending
	// HookRunning: another server is running the hook right now (it holds a
	// lease in the store). The release is not served yet.
	HookRunning
)

// StoredRelease is what a Store knows about a stored release.
type StoredRelease struct {
	// Release has the metadata, SHA256 and Size. Dir, Tarball and EnvFile
	// are set only by stores that keep the files in a local directory
	// (the hook then runs there); a remote store leaves them empty.
	Release
	Hook HookState
}

// Store keeps the releases a Receiver accepted: the local directory by
// default (DirStore), or object storage (package release/s3store). A Store
// must make Put create-only across every process that shares it, so one
// version is never overwritten with other content, and must keep a release
// from being served (Open) until HookDone was called for it.
//
// Implementations are checked by the tests of this package and of
// release/s3store against the same Receiver contract.
type Store interface {
	// Put stores the verified release staged in the local directory stage
	// (release.tgz and release.env; rel.SHA256 and rel.Size describe the
	// tarball). With pendingHook set the release is recorded as not yet
	// hooked until HookDone. If product/version is stored already, Put
	// stores nothing and returns an error wrapping ErrExists. Put may move
	// the files out of stage; the caller removes stage afterwards.
	Put(ctx context.Context, stage string, rel Release, pendingHook bool) error
	// Get describes a stored release, or returns an error wrapping
	// fs.ErrNotExist.
	Get(ctx context.Context, product, version string) (StoredRelease, error)
	// ClaimHook records that this process runs the hook of a HookPending
	// release now (a lease, for stores shared by several servers).
	ClaimHook(ctx context.Context, product, version string) error
	// HookDone records durably that the hook succeeded; from then on the
	// release is served.
	HookDone(ctx context.Context, product, version string) error
	// Delete removes a stored release; a missing one is no error.
	Delete(ctx context.Context, product, version string) error
	// Pending lists the releases in state HookPending as "product/version".
	Pending(ctx context.Context) ([]string, error)
	// Open opens the file name (TarballName or EnvName) of a stored
	// release for reading, whatever its hook state (the caller checks it).
	// The caller must close it. A missing one is an error wrapping
	// fs.ErrNotExist.
	Open(ctx context.Context, product, version, name string) (StoreFile, error)
}

// StoreFile is an open file of a stored release. Seeking is cheap (a
// remote store reads ranges on demand), so it can serve HTTP Range
// requests.
type StoreFile interface {
	io.ReadSeekCloser
	// Size is the file's length in bytes.
	Size() int64
	// ModTime is when the file was stored.
	ModTime() time.Time
}

// DirStore keeps releases in a local directory as
// Dir/<product>/<version>/{release.tgz,release.env}; it is the Receiver's
// default store. A release directory holding the file .hook-pending has
// not had its hook succeed. Put renames the staging directory into place,
// so stage must be on the same file system (the Receiver stages in
// Dir/.incoming). DirStore holds no resources.
type DirStore struct {
	// Dir is the absolute path of the directory; it must exist.
	Dir string
}

var _ Store = DirStore{}

func (d DirStore) path(product, version string) string {
	return filepath.Join(d.Dir, product, version)
}

// Put renames stage to Dir/<product>/<version> (with the pending marker
// inside it when pendingHook is set) and syncs the directories.
func (d DirStore) Put(ctx context.Context, stage string, rel Release, pendingHook bool) error {
	if pendingHook {
		if err := writeSynced(filepath.Join(stage, pendingName), nil); err != nil {
			return err
		}
		if err := atomicfile.SyncDir(stage); err != nil {
			return err
		}
	}
	dst := d.path(rel.Product, rel.Version)
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%w: %s/%s", ErrExists, rel.Product, rel.Version)
	}
	productDir := filepath.Dir(dst)
	if err := os.MkdirAll(productDir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return err
	}
	if err := os.Rename(stage, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s/%s", ErrExists, rel.Product, rel.Version)
		}
		return err
	}
	return atomicfile.SyncDir(productDir)
}

// Get reads the release's release.env back.
func (d DirStore) Get(ctx context.Context, product, version string) (StoredRelease, error) {
	dir := d.path(product, version)
	data, err := os.ReadFile(filepath.Join(dir, envName))
	if err != nil {
		return StoredRelease{}, err
	}
	rel, err := parseEnvFile(data)
	if err != nil {
		return StoredRelease{}, fmt.Errorf("release: %s: %w", filepath.Join(dir, envName), err)
	}
	if rel.Product != product || rel.Version != version {
		return StoredRelease{}, fmt.Errorf("release: %s names %s/%s", filepath.Join(dir, envName), rel.Product, rel.Version)
	}
	rel.Dir = dir
	rel.Tarball = filepath.Join(dir, tarballName)
	rel.EnvFile = filepath.Join(dir, envName)
	st := StoredRelease{Release: rel}
	if hookPending(dir) {
		st.Hook = HookPending
	}
	return st, nil
}

// ClaimHook does nothing: one process owns a DirStore, and the Receiver
// serialises the work on one release in memory.
func (d DirStore) ClaimHook(ctx context.Context, product, version string) error { return nil }

// HookDone removes the pending marker and syncs the directory.
func (d DirStore) HookDone(ctx context.Context, product, version string) error {
	dir := d.path(product, version)
	if err := os.Remove(filepath.Join(dir, pendingName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// Delete takes the release out of sight with one rename into
// Dir/.incoming, then removes it from the disk.
func (d DirStore) Delete(ctx context.Context, product, version string) error {
	dir := d.path(product, version)
	trash, err := os.MkdirTemp(filepath.Join(d.Dir, incomingName), "removed-*")
	if err == nil {
		if err = os.Rename(dir, filepath.Join(trash, "r")); err == nil {
			atomicfile.SyncDir(filepath.Dir(dir))
			dir = trash
		} else {
			os.Remove(trash)
		}
	}
	return os.RemoveAll(dir)
}

// Pending lists the release directories that hold the pending marker.
func (d DirStore) Pending(ctx context.Context) ([]string, error) {
	markers, err := filepath.Glob(filepath.Join(d.Dir, "*", "*", pendingName))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range markers {
		dir := filepath.Dir(m)
		product, version := filepath.Base(filepath.Dir(dir)), filepath.Base(dir)
		if ValidName(product) && ValidName(version) {
			out = append(out, product+"/"+version)
		}
	}
	return out, nil
}

// Open opens Dir/<product>/<version>/<name>.
func (d DirStore) Open(ctx context.Context, product, version, name string) (StoreFile, error) {
	f, err := os.Open(filepath.Join(d.path(product, version), name))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("release: %s/%s/%s: %w", product, version, name, fs.ErrNotExist)
	}
	return osStoreFile{f, fi}, nil
}

type osStoreFile struct {
	*os.File
	fi fs.FileInfo
}

func (f osStoreFile) Size() int64        { return f.fi.Size() }
func (f osStoreFile) ModTime() time.Time { return f.fi.ModTime() }

// hookPending reports whether the release in dir carries the marker of a
// hook that has not succeeded.
func hookPending(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, pendingName))
	return err == nil
}
