// Package s3store keeps releases in S3-compatible object storage, as a
// release.Store behind a release.Receiver, so that several update servers
// can share one bucket with the guarantees of the local directory: a
// release is exactly what the build produced or is not there, a version is
// never overwritten with other content, and of concurrent uploads of one
// version exactly one is stored.
//
//	mc, err := minio.New("s3.example:9000", &minio.Options{Creds: credentials.NewStaticV4(key, secret, "")})
//	st, err := s3store.New(s3store.Config{Client: mc, Bucket: "releases", ServerID: "updates-eu"})
//	rc, err := release.NewReceiver(release.ReceiverConfig{Dir: "/var/lib/release-server", Store: st, Secrets: secrets, Hook: hook})
//
// # Objects
//
// A release is stored under Prefix+"<product>/<version>/":
//
//	release.tgz          the tarball; created with If-None-Match: * and the
//	                     x-amz-checksum-sha256 header, so the object store
//	                     verifies the bytes and a second create fails
//	release.env          the env file the hook sources
//	release.json         the release's metadata (product, version, sha256, ...)
//	hook-done            present once the hook succeeded: only then is it served
//	hook-lease.<server>  the server storing it or running its hook right now
//
// The receiver stages and verifies the upload in its Dir/.incoming first
// (the multipart form carries neither the size nor, from Uploader, the
// checksum before the file, and a create-only PUT with a plain checksum
// header needs both), then Put sends the file once with its size and
// checksum. A wrong checksum or a lost race leaves no release.tgz.
//
// # Hooks and several servers
//
// The hook runs once per release, on the server whose upload stored it
// (201); the same upload reaching another server concurrently answers 200
// there without running the hook. Before it creates release.tgz, a server
// writes its lease (hook-lease.<ServerID>); it removes it after writing
// hook-done. A release without hook-done whose lease belongs to another
// server and is younger than HookLease is "hook running"; otherwise it is
// "hook pending", and a retry of the upload or RunPendingHooks on any
// server runs the hook again (on a local copy in Dir/.incoming). A
// release.tgz without release.json and without a fresh lease is the
// remnant of a crash during Put and is deleted when found. One limit: a
// concurrent upload answered 200 by another server while the winner's
// hook runs is not told if that hook then fails (the winner's client gets
// the 500 and the release is removed); check with a GET or upload again.
//
// Put is one PUT without multipart, so a release is at most 5 GiB on AWS
// S3 (ReceiverConfig.MaxSize defaults to 4 GiB).
//
// # Testing
//
// The tests run against a real versitygw process (OPSKIT_VERSITYGW or
// /root/.cache/opskit/bin/versitygw); they skip without it unless
// OPSKIT_REQUIRE_INTEGRATION=1.
package s3store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/opskit/opskit/release"
)

// DefaultHookLease is the HookLease used when Config.HookLease is 0.
const DefaultHookLease = 15 * time.Minute

// Config configures a Store.
// The zero value of each optional field selects the documented default.
type Config struct {
	// Client talks to the object store. Required. Create it without
	// TrailingHeaders: the checksum goes as a plain header (versitygw
	// refuses the trailing style).
	Client *minio.Client
	// Bucket holds the releases; it must exist. Required.
	Bucket string
	// Prefix is put before every key, e.g. "releases/". Optional.
	Prefix string
	// ServerID names this server's hook leases. It must differ between the
	// servers sharing the bucket and stay the same across restarts (so a
	// restarted server knows its own lease). "" means the host name.
	ServerID string
	// HookLease is how long another server's lease counts as "running the
	// hook"; it must exceed the hook's timeout. 0 means DefaultHookLease.
	HookLease time.Duration
}

// Store is a release.Store in an S3 bucket. It holds no resources of its
// own (the minio client is the caller's) and is safe for concurrent use.
type Store struct {
	mc       *minio.Client
	bucket   string
	prefix   string
	serverID string
	lease    time.Duration
}

var _ release.Store = (*Store)(nil)

// New checks cfg and returns a Store. It does not contact the server.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil || cfg.Bucket == "" {
		return nil, errors.New("s3store: Config.Client and Config.Bucket are required")
	}
	if cfg.ServerID == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("s3store: ServerID: %w", err)
		}
		cfg.ServerID = h
	}
	if strings.ContainsAny(cfg.ServerID, "/\\") {
		return nil, errors.New("s3store: ServerID must not contain a slash")
	}
	if cfg.HookLease <= 0 {
		cfg.HookLease = DefaultHookLease
	}
	return &Store{mc: cfg.Client, bucket: cfg.Bucket, prefix: cfg.Prefix, serverID: cfg.ServerID, lease: cfg.HookLease}, nil
}

func (s *Store) key(product, version, name string) string {
	return s.prefix + product + "/" + version + "/" + name
}

const (
	jsonName   = "release.json"
	doneName   = "hook-done"
	leaseName  = "hook-lease."
	shaMetaKey = "Release-Sha256" // user metadata of release.tgz: hex SHA-256
)

// meta is release.json.
type meta struct {
	release.Metadata
	SHA256 string `json:"sha256"`
	MD5    string `json:"md5,omitempty"`
	Size   int64  `json:"size"`
}

func statusOf(err error) int { return minio.ToErrorResponse(err).StatusCode }

func notFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return statusOf(err) == http.StatusNotFound || code == "NoSuchKey" || code == "NoSuchObject"
}

// Put writes this server's lease, creates release.tgz from the staged file
// (If-None-Match: *, x-amz-checksum-sha256), then release.env and
// release.json, and hook-done when no hook is pending. A release.tgz that
// exists already (412) makes Put remove its lease and return an error
// wrapping release.ErrExists; a checksum the store refuses leaves nothing.
func (s *Store) Put(ctx context.Context, stage string, rel release.Release, pendingHook bool) error {
	if err := s.putLease(ctx, rel.Product, rel.Version); err != nil {
		return err
	}
	dropLease := func() {
		s.mc.RemoveObject(context.WithoutCancel(ctx), s.bucket, s.key(rel.Product, rel.Version, leaseName+s.serverID), minio.RemoveObjectOptions{})
	}
	sum, err := hex.DecodeString(rel.SHA256)
	if err != nil || len(sum) != 32 {
		dropLease()
		return fmt.Errorf("s3store: invalid SHA256 %q", rel.SHA256)
	}
	f, err := os.Open(filepath.Join(stage, release.TarballName))
	if err != nil {
		dropLease()
		return err
	}
	defer f.Close()
	opts := minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		DisableMultipart:     true, // one create-only PUT
		DisableContentSha256: true, // no aws-chunked signing pass: the checksum header covers the bytes
		UserMetadata: map[string]string{
			// A plain, signed header, not a trailer. Capitalised, because
			// minio-go refuses a lowercase "x-amz-checksum-" key without
			// TrailingHeaders, which would send it in the trailing style.
			"X-Amz-Checksum-Sha256": base64.StdEncoding.EncodeToString(sum),
			shaMetaKey:              rel.SHA256,
		},
	}
	opts.SetMatchETagExcept("*")
	if _, err := s.mc.PutObject(ctx, s.bucket, s.key(rel.Product, rel.Version, release.TarballName), f, rel.Size, opts); err != nil {
		dropLease()
		if st := statusOf(err); st == http.StatusPreconditionFailed || st == http.StatusConflict {
			return fmt.Errorf("%w: %s/%s", release.ErrExists, rel.Product, rel.Version)
		}
		return fmt.Errorf("s3store: put %s/%s: %w", rel.Product, rel.Version, err)
	}
	env, err := os.ReadFile(filepath.Join(stage, release.EnvName))
	if err != nil {
		return err
	}
	if err := s.putSmall(ctx, s.key(rel.Product, rel.Version, release.EnvName), env, "text/plain; charset=utf-8"); err != nil {
		return err
	}
	js, err := json.Marshal(meta{Metadata: rel.Metadata, SHA256: rel.SHA256, MD5: rel.MD5, Size: rel.Size})
	if err != nil {
		return err
	}
	if err := s.putSmall(ctx, s.key(rel.Product, rel.Version, jsonName), js, "application/json"); err != nil {
		return err
	}
	if !pendingHook {
		return s.HookDone(ctx, rel.Product, rel.Version)
	}
	return nil
}

func (s *Store) putSmall(ctx context.Context, key string, data []byte, contentType string) error {
	_, err := s.mc.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: contentType, DisableMultipart: true})
	if err != nil {
		return fmt.Errorf("s3store: put %s: %w", key, err)
	}
	return nil
}

func (s *Store) putLease(ctx context.Context, product, version string) error {
	return s.putSmall(ctx, s.key(product, version, leaseName+s.serverID), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), "text/plain")
}

// Get reads release.json and the hook state. A release.tgz without
// release.json and without another server's fresh lease is deleted and
// reported as missing.
func (s *Store) Get(ctx context.Context, product, version string) (release.StoredRelease, error) {
	info, err := s.mc.StatObject(ctx, s.bucket, s.key(product, version, release.TarballName), minio.StatObjectOptions{})
	if err != nil {
		if notFound(err) {
			return release.StoredRelease{}, fmt.Errorf("s3store: %s/%s: %w", product, version, fs.ErrNotExist)
		}
		return release.StoredRelease{}, fmt.Errorf("s3store: stat %s/%s: %w", product, version, err)
	}
	done := false
	if _, err := s.mc.StatObject(ctx, s.bucket, s.key(product, version, doneName), minio.StatObjectOptions{}); err == nil {
		done = true
	} else if !notFound(err) {
		return release.StoredRelease{}, fmt.Errorf("s3store: stat %s/%s/%s: %w", product, version, doneName, err)
	}
	running, ownLease := false, false
	if !done { // a served release needs no lease check
		running, ownLease, err = s.leases(ctx, product, version)
		if err != nil {
			return release.StoredRelease{}, err
		}
		if !running {
			// The other server writes hook-done before it drops its lease:
			// look again, or a hook that finished between the two checks
			// would look pending and run twice.
			if _, err := s.mc.StatObject(ctx, s.bucket, s.key(product, version, doneName), minio.StatObjectOptions{}); err == nil {
				done = true
			} else if !notFound(err) {
				return release.StoredRelease{}, fmt.Errorf("s3store: stat %s/%s/%s: %w", product, version, doneName, err)
			}
		}
	}
	var m meta
	data, err := s.readSmall(ctx, s.key(product, version, jsonName))
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &m); err != nil {
			return release.StoredRelease{}, fmt.Errorf("s3store: %s/%s/%s: %w", product, version, jsonName, err)
		}
	case errors.Is(err, fs.ErrNotExist) && running:
		// Another server is between creating release.tgz and writing
		// its metadata: report what release.tgz says.
		m = meta{Metadata: release.Metadata{Product: product, Version: version}, SHA256: info.UserMetadata[shaMetaKey], Size: info.Size}
	case errors.Is(err, fs.ErrNotExist) && ownLease:
		// This server is between the two PUTs (or crashed there less than
		// HookLease ago): not a release yet, and not ours to remove here.
		return release.StoredRelease{}, fmt.Errorf("s3store: %s/%s: being stored: %w", product, version, fs.ErrNotExist)
	case errors.Is(err, fs.ErrNotExist):
		// A crash between release.tgz and release.json: not a release.
		if err := s.Delete(ctx, product, version); err != nil {
			return release.StoredRelease{}, err
		}
		return release.StoredRelease{}, fmt.Errorf("s3store: %s/%s: incomplete, removed: %w", product, version, fs.ErrNotExist)
	default:
		return release.StoredRelease{}, err
	}
	st := release.StoredRelease{Release: release.Release{Metadata: m.Metadata, SHA256: m.SHA256, MD5: m.MD5, Size: m.Size}}
	switch {
	case done:
		st.Hook = release.HookDone
	case running:
		st.Hook = release.HookRunning
	default:
		st.Hook = release.HookPending
	}
	return st, nil
}

// leases reports whether another server, and whether this one, holds a
// fresh lease on the release.
func (s *Store) leases(ctx context.Context, product, version string) (other, own bool, err error) {
	prefix := s.key(product, version, leaseName)
	for obj := range s.mc.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return false, false, fmt.Errorf("s3store: list %s: %w", prefix, obj.Err)
		}
		if time.Since(obj.LastModified) >= s.lease {
			continue
		}
		if strings.TrimPrefix(obj.Key, prefix) == s.serverID {
			own = true
		} else {
			other = true
		}
	}
	return other, own, nil
}

func (s *Store) readSmall(ctx context.Context, key string) ([]byte, error) {
	obj, err := s.mc.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3store: get %s: %w", key, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, 8<<20))
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("s3store: %s: %w", key, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("s3store: get %s: %w", key, err)
	}
	return data, nil
}

// ClaimHook renews this server's lease.
func (s *Store) ClaimHook(ctx context.Context, product, version string) error {
	return s.putLease(ctx, product, version)
}

// HookDone writes hook-done, then removes this server's lease.
func (s *Store) HookDone(ctx context.Context, product, version string) error {
	if err := s.putSmall(ctx, s.key(product, version, doneName), []byte(s.serverID+"\n"), "text/plain"); err != nil {
		return err
	}
	if err := s.mc.RemoveObject(ctx, s.bucket, s.key(product, version, leaseName+s.serverID), minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
		return fmt.Errorf("s3store: removing lease: %w", err)
	}
	return nil
}

// Delete removes release.tgz first (so the release is gone at once), then
// its other objects.
func (s *Store) Delete(ctx context.Context, product, version string) error {
	keys := []string{s.key(product, version, release.TarballName)}
	prefix := s.key(product, version, "")
	for obj := range s.mc.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return fmt.Errorf("s3store: list %s: %w", prefix, obj.Err)
		}
		if obj.Key != keys[0] {
			keys = append(keys, obj.Key)
		}
	}
	for _, k := range keys {
		if err := s.mc.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
			return fmt.Errorf("s3store: remove %s: %w", k, err)
		}
	}
	return nil
}

// Pending lists the releases whose hook is pending (see Get); it reads
// every key under Prefix.
func (s *Store) Pending(ctx context.Context) ([]string, error) {
	type state struct{ tgz, done bool }
	seen := map[string]*state{}
	var order []string
	for obj := range s.mc.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3store: list: %w", obj.Err)
		}
		parts := strings.Split(strings.TrimPrefix(obj.Key, s.prefix), "/")
		if len(parts) != 3 || !release.ValidName(parts[0]) || !release.ValidName(parts[1]) {
			continue
		}
		k := parts[0] + "/" + parts[1]
		st := seen[k]
		if st == nil {
			st = &state{}
			seen[k] = st
			order = append(order, k)
		}
		switch parts[2] {
		case release.TarballName:
			st.tgz = true
		case doneName:
			st.done = true
		}
	}
	var out []string
	for _, k := range order {
		if st := seen[k]; st.tgz && !st.done {
			product, version, _ := strings.Cut(k, "/")
			rel, err := s.Get(ctx, product, version)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if rel.Hook == release.HookPending {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// Open returns the object as a seekable file: reads after a Seek fetch
// that range.
func (s *Store) Open(ctx context.Context, product, version, name string) (release.StoreFile, error) {
	key := s.key(product, version, name)
	obj, err := s.mc.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3store: get %s: %w", key, err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		if notFound(err) {
			return nil, fmt.Errorf("s3store: %s: %w", key, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("s3store: stat %s: %w", key, err)
	}
	return objectFile{obj, info}, nil
}

type objectFile struct {
	*minio.Object
	info minio.ObjectInfo
}

func (f objectFile) Size() int64        { return f.info.Size }
func (f objectFile) ModTime() time.Time { return f.info.LastModified }
