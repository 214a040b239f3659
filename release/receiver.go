package release

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/opskit/opskit/internal/atomicfile"
	"github.com/opskit/opskit/internal/secret"
)

// Hook is called after a release has been stored, with the stored release.
// Its context is not cancelled when the uploading client goes away, so a
// deployment is never cut off halfway by a dropped connection; a Hook must
// therefore bound its own running time (ScriptHook has a timeout).
//
// If the Hook returns an error, the receiver removes the release it has just
// stored (so a stored release is always one whose hook succeeded), logs the
// error and answers 500 {"error": "release: hook failed"}. The client may
// retry: the retry stores the release again and runs the hook again, so a
// hook must be safe to run twice. A re-upload of a release that is already
// stored answers 200 and does not run the hook.
type Hook func(ctx context.Context, r Release) error

// ReceiverConfig configures a Receiver.
// The zero value of each optional field selects the documented default.
type ReceiverConfig struct {
	// Dir is where releases are stored, as Dir/<product>/<version>/
	// {release.tgz,release.env}. Required; it must exist. Uploads in
	// progress live in Dir/.incoming, on the same file system.
	Dir string
	// Secrets are the accepted upload secrets; at least one is required.
	// Several may be listed to rotate secrets without downtime.
	Secrets []Secret
	// MaxSize is the largest accepted tarball in bytes; larger uploads get
	// 413. 0 means 4 GiB.
	MaxSize int64
	// Hook runs after each newly stored release; nil runs nothing.
	Hook Hook
	// IdleTimeout aborts an upload whose client sends nothing for this
	// long (a stalled or vanished build server), so it cannot hold a
	// staging file forever. 0 means one minute. It works through
	// http.ResponseController, so middleware wrapping the ResponseWriter
	// must provide Unwrap.
	IdleTimeout time.Duration
	// Logger receives one event per upload; nil discards.
	Logger *slog.Logger
}

// DefaultMaxSize is the MaxSize used when ReceiverConfig.MaxSize is 0.
const DefaultMaxSize = 4 << 30

// Limits on the form fields other than the file.
const (
	maxFieldSize  = 4 << 10 // product, version, tag, ...
	maxLogSize    = 1 << 20 // the changelog
	maxFieldBytes = 2 << 20 // all non-file parts, headers included, above MaxSize
	copyBufSize   = 1 << 20 // read and write chunk
	incomingName  = ".incoming"
	tarballName   = "release.tgz"
	envName       = "release.env"
	checksumHint  = "Release-Checksum" // header: "sha256" promises a sha256 field
	maxFormFields = 64
)

// Receiver is the release API: an http.Handler for POST /release that
// accepts a multipart/form-data upload, checks the secret, streams the file
// to disk while hashing it, verifies the checksum and stores the release
// atomically as Dir/<product>/<version>/{release.tgz,release.env}, then
// runs the Hook.
//
// Form fields: product, version and file are required, plus a checksum
// field, sha256 (hex) or md5 (hex, for legacy clients); the checksum may come
// before or after the file part. Optional: tag, build, revision, commit, log
// and rpms ("1" or "0"). The secret is an "Authorization: Bearer" header or,
// for legacy clients, a secret field, which must come before the file part.
// The receiver computes MD5 besides SHA-256 only when an md5 field may
// still come: a client that sends "Release-Checksum: sha256" (as Uploader
// does) or a sha256 field before the file saves that work.
//
// Responses: 201 and 200 carry {"product","version","sha256","size"}; every
// failure carries {"error": message, "fields": [names]}:
//
//	201  stored
//	200  the same product/version/checksum was already stored (hook not re-run)
//	400  missing or invalid fields, listed in "fields"; a truncated body, or
//	     a client that disconnected or sent nothing for IdleTimeout
//	401  wrong or missing secret
//	405  not a POST
//	409  this version is stored with other content (it is left untouched)
//	413  the file exceeds MaxSize
//	422  checksum mismatch (nothing stored)
//	500  the hook failed (the release is removed again) or storing failed
//	507  the disk is full (nothing stored)
//
// On Linux the tarball is written with O_DIRECT in 1 MiB chunks (falling
// back to buffered writes where the file system refuses it), so a large
// upload costs no page-cache copy and does not flush the page cache.
//
// One Receiver must own its Dir: concurrent uploads of one product/version
// are serialised in memory, and exactly one of them is stored.
type Receiver struct {
	dir     string
	secrets []string
	maxSize int64
	hook    Hook
	idle    time.Duration
	log     *slog.Logger
	locks   keyLocks

	// wrapWriter, when set (by tests), wraps the tarball's file writer, so
	// that a full disk can be simulated.
	wrapWriter func(io.Writer) io.Writer
	// buffered, when set (by tests), disables O_DIRECT.
	buffered bool
}

// NewReceiver checks cfg and returns a Receiver. It creates Dir/.incoming
// and removes uploads that a crash left there.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if cfg.Dir == "" {
		return nil, errors.New("release: ReceiverConfig.Dir is required")
	}
	// Release paths handed to hooks are absolute, since hooks run in the
	// release's directory.
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	cfg.Dir = dir
	fi, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("release: %s is not a directory", cfg.Dir)
	}
	var secrets []string
	for _, s := range cfg.Secrets {
		if s != "" {
			secrets = append(secrets, string(s))
		}
	}
	if len(secrets) == 0 {
		return nil, errors.New("release: ReceiverConfig.Secrets needs at least one non-empty secret")
	}
	if cfg.MaxSize < 0 {
		return nil, errors.New("release: ReceiverConfig.MaxSize is negative")
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = time.Minute
	}
	incoming := filepath.Join(cfg.Dir, incomingName)
	if err := os.RemoveAll(incoming); err != nil {
		return nil, fmt.Errorf("release: clearing leftover uploads: %w", err)
	}
	if err := os.Mkdir(incoming, 0o700); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	return &Receiver{
		dir:     cfg.Dir,
		secrets: secrets,
		maxSize: cfg.MaxSize,
		hook:    cfg.Hook,
		idle:    cfg.IdleTimeout,
		log:     cfg.Logger,
	}, nil
}

// apiError is a failed upload: its status and JSON body.
type apiError struct {
	status int
	msg    string
	fields []string
	err    error // the cause, logged but not sent
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, msg string, fields ...string) *apiError {
	return &apiError{status: status, msg: msg, fields: fields}
}

// upload is the state of one request while its parts are read.
type upload struct {
	fields   map[string]string
	authed   bool
	stage    string // Dir/.incoming/upload-*, once the file part began
	fileSeen bool
	size     int64
	sha256   string
	md5      string // "" unless computed
}

// ServeHTTP handles one upload. See Receiver for the protocol.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rel, created, err := rc.receive(w, r)
	log := rc.log.With("remote", r.RemoteAddr)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{status: http.StatusInternalServerError, msg: "release: internal error", err: err}
		}
		log.Warn("release upload rejected", "status", ae.status, "error", ae.msg, "fields", ae.fields, "cause", ae.err,
			"product", rel.Product, "version", rel.Version)
		if ae.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		fields := ae.fields
		if fields == nil {
			fields = []string{}
		}
		writeJSON(w, ae.status, map[string]any{"error": ae.msg, "fields": fields})
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		log.Info("release stored", "product", rel.Product, "version", rel.Version, "sha256", rel.SHA256, "size", rel.Size)
	} else {
		log.Info("release already stored", "product", rel.Product, "version", rel.Version, "sha256", rel.SHA256)
	}
	writeJSON(w, status, Receipt{Product: rel.Product, Version: rel.Version, SHA256: rel.SHA256, Size: rel.Size})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// receive reads, verifies and stores one upload. created reports a new
// release (201) rather than one already stored (200).
func (rc *Receiver) receive(w http.ResponseWriter, r *http.Request) (rel Release, created bool, err error) {
	if r.Method != http.MethodPost {
		return rel, false, fail(http.StatusMethodNotAllowed, "release: method not allowed")
	}
	up := &upload{fields: map[string]string{}}
	defer func() {
		if up.stage != "" {
			os.RemoveAll(up.stage)
		}
	}()
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !secret.AnyEqual(tok, rc.secrets...) {
			return rel, false, fail(http.StatusUnauthorized, "release: wrong secret")
		}
		up.authed = true
	}
	limit := rc.maxSize + maxFieldBytes
	if r.ContentLength > limit {
		return rel, false, fail(http.StatusRequestEntityTooLarge, "release: too large", "file")
	}
	mt, params, perr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if perr != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return rel, false, fail(http.StatusBadRequest, "release: body is not multipart/form-data")
	}
	idle := &idleReader{r: r.Body, ctrl: http.NewResponseController(w), timeout: rc.idle}
	defer idle.stop()
	body := http.MaxBytesReader(nil, io.NopCloser(idle), limit)
	// A large bufio.Reader is used by multipart.NewReader as it is, so each
	// part read returns up to a megabyte instead of 4 KiB.
	mr := multipart.NewReader(bufio.NewReaderSize(body, copyBufSize), params["boundary"])
	hashMD5 := r.Header.Get(checksumHint) != "sha256"
	for n := 0; ; n++ {
		if n > maxFormFields {
			return rel, false, fail(http.StatusBadRequest, "release: too many form fields")
		}
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rel, false, bodyError(err)
		}
		name := p.FormName()
		if name == "file" {
			if !up.authed {
				return rel, false, fail(http.StatusUnauthorized, "release: missing secret (send it before the file)", "secret")
			}
			if up.fileSeen {
				return rel, false, fail(http.StatusBadRequest, "release: duplicate field", "file")
			}
			up.fileSeen = true
			if _, ok := up.fields["sha256"]; ok {
				hashMD5 = false
			}
			if _, ok := up.fields["md5"]; ok {
				hashMD5 = true
			}
			if err := rc.storeFile(up, p, hashMD5); err != nil {
				return rel, false, err
			}
			continue
		}
		max := int64(maxFieldSize)
		if name == "log" {
			max = maxLogSize
		}
		v, err := io.ReadAll(io.LimitReader(p, max+1))
		if err != nil {
			return rel, false, bodyError(err)
		}
		if int64(len(v)) > max {
			return rel, false, fail(http.StatusBadRequest, "release: field too long", name)
		}
		if name == "secret" {
			if !secret.AnyEqual(string(v), rc.secrets...) {
				return rel, false, fail(http.StatusUnauthorized, "release: wrong secret")
			}
			up.authed = true
			continue
		}
		if !knownField(name) {
			continue // unknown fields are ignored, for newer clients
		}
		if _, dup := up.fields[name]; dup {
			return rel, false, fail(http.StatusBadRequest, "release: duplicate field", name)
		}
		up.fields[name] = string(v)
	}
	idle.stop()
	if !up.authed {
		return rel, false, fail(http.StatusUnauthorized, "release: missing secret", "secret")
	}
	rel, err = rc.validate(up)
	if err != nil {
		return rel, false, err
	}
	return rc.commit(r.Context(), up, rel)
}

func knownField(name string) bool {
	switch name {
	case "product", "version", "tag", "build", "revision", "commit", "log", "rpms", "sha256", "md5":
		return true
	}
	return false
}

// bodyError turns a failure to read the request body into its answer.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{status: http.StatusRequestEntityTooLarge, msg: "release: too large", fields: []string{"file"}, err: err}
	}
	return &apiError{status: http.StatusBadRequest, msg: "release: truncated or malformed body", err: err}
}

// idleReader pushes the connection's read deadline forward while data
// arrives, so only a client that stalls for the whole timeout is cut off.
type idleReader struct {
	r       io.Reader
	ctrl    *http.ResponseController
	timeout time.Duration
	last    time.Time
	off     bool // deadlines unsupported, or reading is over
}

func (ir *idleReader) Read(p []byte) (int, error) {
	if !ir.off {
		if now := time.Now(); now.Sub(ir.last) > ir.timeout/8 {
			if err := ir.ctrl.SetReadDeadline(now.Add(ir.timeout)); err != nil {
				ir.off = true
			}
			ir.last = now
		}
	}
	return ir.r.Read(p)
}

// stop clears the deadline once the body has been read, so that it cannot
// fire while the hook runs or the connection waits for its next request.
func (ir *idleReader) stop() {
	if !ir.off && !ir.last.IsZero() {
		ir.ctrl.SetReadDeadline(time.Time{})
	}
	ir.off = true
}

// writeError marks an error of the file system, not of the request body.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

func storageError(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return &apiError{status: http.StatusInsufficientStorage, msg: "release: insufficient storage", err: err}
	}
	return &apiError{status: http.StatusInternalServerError, msg: "release: storing the upload failed", err: err}
}

// storeFile streams the file part into a new staging directory while
// hashing it, and fsyncs it. Reading and hashing run in this goroutine while
// another one writes the previous chunk, so hashing overlaps disk writes.
func (rc *Receiver) storeFile(up *upload, p io.Reader, hashMD5 bool) error {
	stage, err := os.MkdirTemp(filepath.Join(rc.dir, incomingName), "upload-*")
	if err != nil {
		return storageError(err)
	}
	up.stage = stage
	f, direct, err := createTarball(filepath.Join(stage, tarballName), !rc.buffered)
	if err != nil {
		return storageError(err)
	}
	defer f.Close()
	var fw io.Writer = &directWriter{f: f, direct: direct}
	if rc.wrapWriter != nil {
		fw = rc.wrapWriter(fw)
	}
	hashes := []hash.Hash{sha256.New()}
	if hashMD5 {
		hashes = append(hashes, md5.New())
	}
	bufs, free, err := allocBuffers(4, copyBufSize)
	if err != nil {
		return storageError(err)
	}
	defer free()
	n, err := copyPipelined(fw, p, rc.maxSize+1, hashes, bufs)
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return storageError(we.err)
		}
		return bodyError(err)
	}
	if n > rc.maxSize {
		return fail(http.StatusRequestEntityTooLarge, "release: too large", "file")
	}
	if err := f.Sync(); err != nil {
		return storageError(err)
	}
	if err := f.Close(); err != nil {
		return storageError(err)
	}
	up.size = n
	up.sha256 = hex.EncodeToString(hashes[0].Sum(nil))
	if hashMD5 {
		up.md5 = hex.EncodeToString(hashes[1].Sum(nil))
	}
	return nil
}

// copyPipelined copies at most limit bytes from r to w in chunks the size
// of bufs' buffers, through three goroutines: this one reads, a second
// feeds each chunk to hashes, a third writes it, so reading, hashing and
// the disk overlap. Every chunk but the last is full. It stops at the first
// read or write error; write errors come back as *writeError.
func copyPipelined(w io.Writer, r io.Reader, limit int64, hashes []hash.Hash, bufs [][]byte) (int64, error) {
	free := make(chan []byte, len(bufs))
	toHash := make(chan []byte, len(bufs))
	toWrite := make(chan []byte, len(bufs))
	failed := make(chan struct{})
	var werr error
	done := make(chan struct{})
	for _, b := range bufs {
		free <- b
	}
	go func() {
		defer close(toWrite)
		for b := range toHash {
			for _, h := range hashes {
				h.Write(b)
			}
			toWrite <- b
		}
	}()
	go func() {
		defer close(done)
		for b := range toWrite {
			if werr == nil {
				if _, err := w.Write(b); err != nil {
					werr = &writeError{err}
					close(failed)
				}
			}
			free <- b[:cap(b)]
		}
	}()
	var total int64
	var rerr error
	for total < limit {
		var b []byte
		select {
		case <-failed: // stop reading as soon as a write has failed
		default:
			select {
			case b = <-free:
			case <-failed:
			}
		}
		if b == nil {
			break
		}
		b = b[:min(int64(len(b)), limit-total)]
		n, err := fill(r, b)
		if n > 0 {
			total += int64(n)
			toHash <- b[:n]
		} else {
			free <- b
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(toHash)
	<-done
	if werr != nil {
		return total, werr
	}
	return total, rerr
}

// directWriter writes to a file opened with O_DIRECT while the writes are
// aligned, and turns O_DIRECT off for the last, shorter chunk or when the
// file system refuses a direct write.
type directWriter struct {
	f      *os.File
	direct bool
}

func (d *directWriter) Write(b []byte) (int, error) {
	if d.direct && len(b)%directAlign != 0 {
		if err := setBuffered(d.f); err != nil {
			return 0, err
		}
		d.direct = false
	}
	n, err := d.f.Write(b)
	if err != nil && n == 0 && d.direct && errors.Is(err, syscall.EINVAL) {
		if err := setBuffered(d.f); err != nil {
			return 0, err
		}
		d.direct = false
		return d.f.Write(b)
	}
	return n, err
}

// fill reads into b until it is full, r ends (io.EOF) or fails.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// validate checks the fields and the checksum and builds the Release.
func (rc *Receiver) validate(up *upload) (Release, error) {
	f := up.fields
	rel := Release{Metadata: Metadata{
		Product: f["product"], Version: f["version"], Tag: f["tag"], Build: f["build"],
		Revision: f["revision"], Commit: f["commit"], Log: f["log"],
	}}
	var bad []string
	for _, name := range []string{"product", "version"} {
		if !ValidName(f[name]) {
			bad = append(bad, name)
		}
	}
	for _, name := range []string{"tag", "build", "revision", "commit"} {
		if !plainText(f[name]) {
			bad = append(bad, name)
		}
	}
	if !utf8.ValidString(rel.Log) || strings.ContainsRune(rel.Log, 0) {
		bad = append(bad, "log")
	}
	switch f["rpms"] {
	case "", "0", "false":
	case "1", "true":
		rel.RPMs = true
	default:
		bad = append(bad, "rpms")
	}
	if !up.fileSeen {
		bad = append(bad, "file")
	}
	sum256, hasSHA := f["sha256"]
	sumMD5, hasMD5 := f["md5"]
	switch {
	case hasSHA && !validHex(sum256, 64):
		bad = append(bad, "sha256")
	case hasMD5 && !validHex(sumMD5, 32):
		bad = append(bad, "md5")
	case !hasSHA && !hasMD5:
		bad = append(bad, "sha256")
	case hasMD5 && up.fileSeen && up.md5 == "":
		// The client promised sha256 (Release-Checksum header) or sent
		// sha256 before the file, then sent only an md5 after it.
		bad = append(bad, "md5")
	}
	if len(bad) > 0 {
		return rel, &apiError{status: http.StatusBadRequest, msg: "release: missing or invalid fields", fields: bad}
	}
	if hasSHA && !strings.EqualFold(sum256, up.sha256) {
		return rel, fail(http.StatusUnprocessableEntity, "release: checksum mismatch", "sha256")
	}
	if hasMD5 && !strings.EqualFold(sumMD5, up.md5) {
		return rel, fail(http.StatusUnprocessableEntity, "release: checksum mismatch", "md5")
	}
	rel.SHA256 = up.sha256
	if hasMD5 {
		rel.MD5 = up.md5
	}
	rel.Size = up.size
	rel.Dir = filepath.Join(rc.dir, rel.Product, rel.Version)
	rel.Tarball = filepath.Join(rel.Dir, tarballName)
	rel.EnvFile = filepath.Join(rel.Dir, envName)
	return rel, nil
}

// plainText reports whether s is valid UTF-8 without control characters.
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// commit writes release.env beside the staged tarball, renames the staging
// directory to Dir/<product>/<version> and runs the hook, holding the
// product/version lock throughout.
func (rc *Receiver) commit(ctx context.Context, up *upload, rel Release) (Release, bool, error) {
	if err := writeSynced(filepath.Join(up.stage, envName), envFile(rel)); err != nil {
		return rel, false, storageError(err)
	}
	if err := atomicfile.SyncDir(up.stage); err != nil {
		return rel, false, storageError(err)
	}
	unlock, err := rc.locks.lock(ctx, rel.Product+"/"+rel.Version)
	if err != nil {
		return rel, false, bodyError(err)
	}
	defer unlock()
	if _, err := os.Stat(rel.Dir); err == nil {
		stored, err := storedSHA256(rel.EnvFile)
		if err != nil {
			return rel, false, storageError(err)
		}
		if stored != rel.SHA256 {
			return rel, false, fail(http.StatusConflict, "release: version exists with other content", "version")
		}
		return rel, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return rel, false, storageError(err)
	}
	productDir := filepath.Dir(rel.Dir)
	if err := os.MkdirAll(productDir, 0o755); err != nil {
		return rel, false, storageError(err)
	}
	if err := os.Chmod(up.stage, 0o755); err != nil {
		return rel, false, storageError(err)
	}
	if err := os.Rename(up.stage, rel.Dir); err != nil {
		return rel, false, storageError(err)
	}
	up.stage = ""
	if err := atomicfile.SyncDir(productDir); err != nil {
		return rel, false, storageError(err)
	}
	if rc.hook == nil {
		return rel, true, nil
	}
	if err := rc.hook(context.WithoutCancel(ctx), rel); err != nil {
		rc.log.Error("release hook failed; removing the release", "product", rel.Product, "version", rel.Version, "error", err)
		rc.remove(rel.Dir)
		return rel, false, &apiError{status: http.StatusInternalServerError, msg: "release: hook failed", err: err}
	}
	return rel, true, nil
}

// remove takes a stored release away: first out of sight with one rename,
// then from the disk.
func (rc *Receiver) remove(dir string) {
	trash, err := os.MkdirTemp(filepath.Join(rc.dir, incomingName), "removed-*")
	if err == nil {
		if err = os.Rename(dir, filepath.Join(trash, "r")); err == nil {
			atomicfile.SyncDir(filepath.Dir(dir))
			dir = trash
		} else {
			os.Remove(trash)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		rc.log.Error("release: removing failed release", "dir", dir, "error", err)
	}
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// keyLocks is a set of mutexes by key, waited on with a context.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while locked
	refs int
}

func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// Files returns an http.Handler that serves the stored releases read-only,
// e.g. GET /<product>/<version>/release.tgz when mounted with
// http.StripPrefix, for Fetch on the other side. It never serves uploads in
// progress or any other name starting with a dot.
func (rc *Receiver) Files() http.Handler {
	return http.FileServer(noDotFiles{http.Dir(rc.dir)})
}

// noDotFiles hides Dir/.incoming and every other dot file.
type noDotFiles struct{ fs http.FileSystem }

func (n noDotFiles) Open(name string) (http.File, error) {
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") {
			return nil, os.ErrNotExist
		}
	}
	return n.fs.Open(name)
}
