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
	"io/fs"
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

	"go.opentelemetry.io/otel/trace"

	"github.com/opskit/opskit/internal/atomicfile"
	"github.com/opskit/opskit/internal/secret"
)

// Hook is called after a release has been stored, with the stored release.
// Its context is not cancelled when the uploading client goes away, so a
// deployment is never cut off halfway by a dropped connection; a Hook must
// therefore bound its own running time (ScriptHook has a timeout).
//
// If the Hook returns an error, the receiver removes the release it has just
// stored (so a served release is always one whose hook succeeded), logs the
// error and answers 500 {"error": "release: hook failed"}. The client may
// retry: the retry stores the release again and runs the hook again, so a
// hook must be safe to run twice. If the process dies while the hook runs,
// the release stays stored but unserved, and its hook runs again from
// RunPendingHooks or on a retry of the upload (which then answers 201). A
// re-upload of a release whose hook succeeded answers 200 and does not run
// the hook.
type Hook func(ctx context.Context, r Release) error

// ReceiverConfig configures a Receiver.
// The zero value of each optional field selects the documented default.
type ReceiverConfig struct {
	// Dir is where releases are stored, as Dir/<product>/<version>/
	// {release.tgz,release.env}. Required; it must exist. Uploads in
	// progress live in Dir/.incoming, on the same file system.
	Dir string
	// Store keeps the releases; nil means DirStore{Dir: Dir}, the
	// directory layout above. With another store (release/s3store), Dir
	// only holds Dir/.incoming. Hooks of a remote store's releases run on a
	// local copy in Dir/.incoming.
	Store Store
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
	// AuthTimeout bounds the time from the start of a request until it is
	// authenticated, however the client trickles its bytes: a legacy form
	// client must deliver its secret field within it. 0 means 10 seconds.
	AuthTimeout time.Duration
	// UploadTimeout bounds the time to read a whole authenticated upload,
	// however steadily the bytes trickle in. 0 means one hour.
	UploadTimeout time.Duration
	// MaxConcurrentUploads caps the authenticated uploads in progress (their
	// hook included); a further one gets 503 with Retry-After. Each costs
	// about 8 MiB of memory at most, so the default of
	// DefaultMaxConcurrentUploads keeps the worst case near 32 MiB.
	// Connections that have not authenticated yet hold no slot and at most
	// a few KiB each (see Receiver).
	MaxConcurrentUploads int
	// ResumableExpiry is how long an unfinished resumable upload (see
	// Uploads) is kept after its last PATCH. 0 means
	// DefaultResumableExpiry.
	ResumableExpiry time.Duration
	// Logger receives one event per upload; nil discards. Records are
	// logged with the upload's context, so a handler that reads the span
	// from it can add trace IDs.
	Logger *slog.Logger
	// Metrics counts uploads, bytes, hooks and the uploads in flight (see
	// NewMetrics); nil counts nothing.
	Metrics *Metrics
	// TracerProvider traces each upload request as a span ("release
	// upload"; resumable: "release upload create" and "release upload
	// patch"), a child of the request context's span, with the hook as a
	// child span ("release hook") and the result in opskit.result; nil
	// traces nothing.
	TracerProvider trace.TracerProvider
}

// DefaultMaxConcurrentUploads is the MaxConcurrentUploads used when
// ReceiverConfig.MaxConcurrentUploads is 0.
const DefaultMaxConcurrentUploads = 4

// DefaultMaxSize is the MaxSize used when ReceiverConfig.MaxSize is 0.
const DefaultMaxSize = 4 << 30

// Limits on the form fields other than the file.
const (
	maxFieldSize  = 4 << 10         // product, version, tag, ...
	maxLogSize    = 1 << 20         // the changelog
	maxFieldBytes = 2 << 20         // all non-file parts, headers included, above MaxSize
	copyBufSize   = 1 << 20         // read and write chunk
	legacyBufSize = 16 << 10        // read buffer before a legacy client authenticated
	preAuthBytes  = 8 << 10         // body bytes read before the secret field at most
	retryAfter    = "10"            // seconds, with 503 when all upload slots are taken
	pendingName   = ".hook-pending" // in a release directory whose hook has not succeeded
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
// Before authentication a request costs little: a valid "Authorization:
// Bearer" header authenticates before any body byte is read (a wrong one
// gets 401 at once); a legacy client without it must send its secret field
// within the first 8 KiB of the body (part headers included) and within
// AuthTimeout, or gets 401 (400 for the timeout). Only then does the upload
// take one of MaxConcurrentUploads slots and its megabyte buffers. All form
// parts but the file, headers included, share a budget of about 3 MiB, and
// the whole body must arrive within UploadTimeout. An http.Server in front
// should set ReadHeaderTimeout and a small MaxHeaderBytes (the example
// server uses 10 s and 64 KiB).
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
//	413  the file exceeds MaxSize, or the other parts their budget
//	422  checksum mismatch (nothing stored)
//	500  the hook failed (the release is removed again) or storing failed
//	503  MaxConcurrentUploads uploads are in progress (Retry-After: 10)
//	507  the disk is full (nothing stored)
//
// A release is published (renamed into place) before its hook runs, with a
// marker that says the hook has not succeeded yet; the marker goes once the
// hook succeeded. Until then Files does not serve the release. If the
// process dies while the hook runs, the marker stays: RunPendingHooks (call
// it at startup) or a retry of the same upload runs the hook again.
//
// On Linux the tarball is written with O_DIRECT in 1 MiB chunks (falling
// back to buffered writes where the file system refuses it), so a large
// upload costs no page-cache copy and does not flush the page cache. With
// a remote Store the staged tarball is written through the page cache
// without fsync instead, since the PUT reads it back at once.
//
// One Receiver must own its Dir: concurrent uploads of one product/version
// are serialised in memory, and exactly one of them is stored.
type Receiver struct {
	dir       string
	secrets   []string
	maxSize   int64
	hook      Hook
	idle      time.Duration
	log       *slog.Logger
	store     Store
	locks     keyLocks
	slots     chan struct{} // one token per upload in progress
	authTO    time.Duration
	upTO      time.Duration
	tusExpiry time.Duration
	metrics   *Metrics
	tracer    trace.Tracer

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
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 10 * time.Second
	}
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = time.Hour
	}
	if cfg.MaxConcurrentUploads < 0 {
		return nil, errors.New("release: ReceiverConfig.MaxConcurrentUploads is negative")
	}
	if cfg.MaxConcurrentUploads == 0 {
		cfg.MaxConcurrentUploads = DefaultMaxConcurrentUploads
	}
	if cfg.Store == nil {
		cfg.Store = DirStore{Dir: cfg.Dir}
	}
	if cfg.ResumableExpiry <= 0 {
		cfg.ResumableExpiry = DefaultResumableExpiry
	}
	// Clear what a crash left in Dir/.incoming, but keep the unfinished
	// resumable uploads (they expire on their own).
	incoming := filepath.Join(cfg.Dir, incomingName)
	if err := os.Mkdir(incoming, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("release: %w", err)
	}
	entries, err := os.ReadDir(incoming)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	for _, e := range entries {
		if e.Name() == tusDirName && e.IsDir() {
			continue
		}
		if err := os.RemoveAll(filepath.Join(incoming, e.Name())); err != nil {
			return nil, fmt.Errorf("release: clearing leftover uploads: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(incoming, tusDirName), 0o700); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	return &Receiver{
		dir:       cfg.Dir,
		store:     cfg.Store,
		secrets:   secrets,
		maxSize:   cfg.MaxSize,
		hook:      cfg.Hook,
		idle:      cfg.IdleTimeout,
		log:       cfg.Logger,
		slots:     make(chan struct{}, cfg.MaxConcurrentUploads),
		authTO:    cfg.AuthTimeout,
		upTO:      cfg.UploadTimeout,
		tusExpiry: cfg.ResumableExpiry,
		metrics:   cfg.Metrics,
		tracer:    newTracer(cfg.TracerProvider),
	}, nil
}

// apiError is a failed upload: its status and JSON body.
type apiError struct {
	status int
	msg    string
	fields []string
	err    error  // the cause, logged but not sent
	result string // the Upload* result when its status does not tell it
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
	slot     bool   // holds one of Receiver.slots
}

// ServeHTTP handles one upload. See Receiver for the protocol.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, obs := rc.observe(r, "release upload")
	rel, created, err := rc.receive(w, r)
	obs.end(rel, created, err) // counted before the client has its answer
	rc.reply(w, r, rel, created, err)
}

// reply answers an upload with its receipt or its error.
func (rc *Receiver) reply(w http.ResponseWriter, r *http.Request, rel Release, created bool, err error) {
	log := rc.log.With("remote", r.RemoteAddr)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{status: http.StatusInternalServerError, msg: "release: internal error", err: err}
		}
		log.WarnContext(r.Context(), "release upload rejected", "status", ae.status, "error", ae.msg, "fields", ae.fields, "cause", ae.err,
			"product", rel.Product, "version", rel.Version)
		switch ae.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", http.MethodPost)
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", retryAfter)
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
		log.InfoContext(r.Context(), "release stored", "product", rel.Product, "version", rel.Version, "sha256", rel.SHA256, "size", rel.Size)
	} else {
		log.InfoContext(r.Context(), "release already stored", "product", rel.Product, "version", rel.Version, "sha256", rel.SHA256)
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
	start := time.Now()
	up := &upload{fields: map[string]string{}}
	defer func() {
		if up.stage != "" {
			os.RemoveAll(up.stage)
		}
		if up.slot {
			rc.freeSlot()
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
	bufSize := legacyBufSize
	if up.authed {
		if err := rc.takeSlot(up); err != nil {
			return rel, false, err
		}
		bufSize = copyBufSize
	}
	idle := &idleReader{r: r.Body, ctrl: http.NewResponseController(w), timeout: rc.idle, deadline: start.Add(rc.authTO)}
	if up.authed {
		idle.deadline = start.Add(rc.upTO)
	}
	defer idle.stop()
	gate := &bodyGate{r: http.MaxBytesReader(nil, io.NopCloser(idle), limit), authed: up.authed,
		preAuth: preAuthBytes, fieldBytes: maxFieldBytes + int64(bufSize)}
	// A large bufio.Reader is used by multipart.NewReader as it is, so each
	// part read returns up to a megabyte instead of 4 KiB. Before a legacy
	// client has authenticated it gets a small one.
	mr := multipart.NewReader(bufio.NewReaderSize(gate, bufSize), params["boundary"])
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
			gate.inFile = true
			err := rc.storeFile(up, p, hashMD5)
			gate.inFile = false
			if err != nil {
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
			if !up.authed {
				if err := rc.takeSlot(up); err != nil {
					return rel, false, err
				}
				up.authed = true
				gate.authed = true
				idle.setDeadline(start.Add(rc.upTO))
			}
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

// takeSlot takes one of the MaxConcurrentUploads slots for up, or fails
// with 503 when all are taken.
func (rc *Receiver) takeSlot(up *upload) error {
	select {
	case rc.slots <- struct{}{}:
		up.slot = true
		rc.metrics.slotTaken()
		return nil
	default:
		return fail(http.StatusServiceUnavailable, "release: too many uploads in progress; retry later")
	}
}

// freeSlot gives back a slot takeSlot took.
func (rc *Receiver) freeSlot() {
	<-rc.slots
	rc.metrics.slotFreed()
}

// errPreAuth and errFieldBytes are the reasons bodyGate stops reading.
var (
	errPreAuth    = errors.New("release: no secret within the first bytes of the body")
	errFieldBytes = errors.New("release: form parts other than the file are too large")
)

// bodyGate bounds what the body may cost before and besides the file: at
// most preAuth bytes until the client authenticated, and at most
// fieldBytes outside the file part (part headers included) in all.
type bodyGate struct {
	r          io.Reader
	authed     bool
	inFile     bool
	preAuth    int64
	fieldBytes int64
}

func (g *bodyGate) Read(p []byte) (int, error) {
	if !g.authed {
		if g.preAuth <= 0 {
			return 0, errPreAuth
		}
		p = p[:min(int64(len(p)), g.preAuth)]
	}
	if !g.inFile {
		if g.fieldBytes <= 0 {
			return 0, errFieldBytes
		}
		p = p[:min(int64(len(p)), g.fieldBytes)]
	}
	n, err := g.r.Read(p)
	if !g.authed {
		g.preAuth -= int64(n)
	}
	if !g.inFile {
		g.fieldBytes -= int64(n)
	}
	return n, err
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
	if errors.Is(err, errPreAuth) {
		return &apiError{status: http.StatusUnauthorized, msg: "release: missing secret (send it first)", fields: []string{"secret"}, err: err}
	}
	if errors.Is(err, errFieldBytes) {
		return &apiError{status: http.StatusRequestEntityTooLarge, msg: "release: form fields too large", err: err}
	}
	if errors.As(err, &mbe) {
		return &apiError{status: http.StatusRequestEntityTooLarge, msg: "release: too large", fields: []string{"file"}, err: err}
	}
	return &apiError{status: http.StatusBadRequest, msg: "release: truncated or malformed body", err: err}
}

// idleReader pushes the connection's read deadline forward while data
// arrives, so only a client that stalls for the whole timeout is cut off,
// but never past deadline, which no trickle of bytes moves.
type idleReader struct {
	r        io.Reader
	ctrl     *http.ResponseController
	timeout  time.Duration
	deadline time.Time
	last     time.Time
	off      bool // deadlines unsupported, or reading is over
}

func (ir *idleReader) Read(p []byte) (int, error) {
	if !ir.off {
		if now := time.Now(); now.Sub(ir.last) > ir.timeout/8 {
			ir.set(now)
		}
	}
	if !ir.deadline.IsZero() && !time.Now().Before(ir.deadline) {
		// Also where the connection's deadline cannot be set
		// (httptest.ResponseRecorder), the total deadline holds.
		return 0, os.ErrDeadlineExceeded
	}
	return ir.r.Read(p)
}

func (ir *idleReader) set(now time.Time) {
	d := now.Add(ir.timeout)
	if !ir.deadline.IsZero() && ir.deadline.Before(d) {
		d = ir.deadline
	}
	if err := ir.ctrl.SetReadDeadline(d); err != nil {
		ir.off = true
	}
	ir.last = now
}

// setDeadline replaces the total deadline.
func (ir *idleReader) setDeadline(d time.Time) {
	ir.deadline = d
	if !ir.off {
		ir.set(time.Now())
	}
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
	// With a remote store the staged file is read again at once for the
	// PUT and thrown away: keep it in the page cache (no O_DIRECT, no
	// fsync); the store makes it durable.
	_, local := rc.store.(DirStore)
	f, direct, err := createTarball(filepath.Join(stage, tarballName), !rc.buffered && local)
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
	n, err := copyPipelined(fw, rc.metrics.received(p), rc.maxSize+1, hashes, bufs)
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
	if local {
		if err := f.Sync(); err != nil {
			return storageError(err)
		}
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

// commit writes release.env beside the staged tarball, stores the release
// create-only and runs the hook, holding the product/version lock
// throughout. Until the hook succeeded, the store keeps the release
// unserved (HookPending).
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
	st, err := rc.store.Get(ctx, rel.Product, rel.Version)
	if errors.Is(err, fs.ErrNotExist) {
		err = rc.store.Put(ctx, up.stage, rel, rc.hook != nil)
		if err == nil {
			return rc.afterPut(ctx, up, rel)
		}
		if !errors.Is(err, ErrExists) {
			return rel, false, storageError(err)
		}
		// Another server stored it first.
		st, err = rc.store.Get(ctx, rel.Product, rel.Version)
	}
	if err != nil {
		return rel, false, storageError(err)
	}
	if st.SHA256 != rel.SHA256 {
		return rel, false, fail(http.StatusConflict, "release: version exists with other content", "version")
	}
	if st.Hook != HookPending {
		// Done, or another server runs its hook now.
		return withPaths(st), false, nil
	}
	// Stored, but its hook never succeeded (the process died while it
	// ran): this retry runs it, for the release as stored.
	if err := rc.store.ClaimHook(ctx, rel.Product, rel.Version); err != nil {
		return rel, false, storageError(err)
	}
	hooked, cleanup, err := rc.localCopy(ctx, st, up.stage)
	if err != nil {
		return rel, false, storageError(err)
	}
	defer cleanup()
	if err := rc.runHook(ctx, hooked); err != nil {
		return rel, false, err
	}
	return withPaths(st), true, nil
}

// afterPut runs the hook of a release Put has just stored.
func (rc *Receiver) afterPut(ctx context.Context, up *upload, rel Release) (Release, bool, error) {
	st, err := rc.store.Get(ctx, rel.Product, rel.Version)
	if err != nil {
		return rel, false, storageError(err)
	}
	hooked := st.Release
	if hooked.Dir == "" { // a remote store: the hook runs on the staged files
		hooked = rel
		setPaths(&hooked, up.stage)
	}
	if rc.hook != nil {
		if err := rc.runHook(ctx, hooked); err != nil {
			return rel, false, err
		}
	}
	return withPaths(st), true, nil
}

// withPaths is the release as reported to the client: local paths only
// where the store has them.
func withPaths(st StoredRelease) Release { return st.Release }

func setPaths(rel *Release, dir string) {
	rel.Dir = dir
	rel.Tarball = filepath.Join(dir, tarballName)
	rel.EnvFile = filepath.Join(dir, envName)
}

// localCopy returns st with local paths for its hook. A local store has
// them; for a remote one the stored files are copied into dir (a staging
// directory under Dir/.incoming; "" makes a new one, removed by cleanup).
func (rc *Receiver) localCopy(ctx context.Context, st StoredRelease, dir string) (Release, func(), error) {
	rel := st.Release
	if rel.Dir != "" {
		return rel, func() {}, nil
	}
	cleanup := func() {}
	if dir == "" {
		d, err := os.MkdirTemp(filepath.Join(rc.dir, incomingName), "hook-*")
		if err != nil {
			return rel, cleanup, err
		}
		dir, cleanup = d, func() { os.RemoveAll(d) }
	}
	for _, name := range []string{tarballName, envName} {
		if err := rc.download(ctx, st, name, filepath.Join(dir, name)); err != nil {
			cleanup()
			return rel, func() {}, err
		}
	}
	setPaths(&rel, dir)
	return rel, cleanup, nil
}

// download copies a stored file to path, replacing it.
func (rc *Receiver) download(ctx context.Context, st StoredRelease, name, path string) error {
	src, err := rc.store.Open(ctx, st.Product, st.Version, name)
	if err != nil {
		return err
	}
	defer src.Close()
	os.Remove(path)
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(dst, ctxReader{ctx, src}, make([]byte, 256<<10))
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return err
}

// runHook runs the hook for a stored release in state HookPending, with
// the product/version lock held. On success it records HookDone; on
// failure it deletes the release.
func (rc *Receiver) runHook(ctx context.Context, rel Release) error {
	if rc.hook != nil {
		hctx, span := rc.startHook(context.WithoutCancel(ctx), rel)
		start := time.Now()
		err := rc.hook(hctx, rel)
		rc.metrics.hookRan(time.Since(start), err)
		endHook(span, err)
		if err != nil {
			rc.log.ErrorContext(hctx, "release hook failed; removing the release", "product", rel.Product, "version", rel.Version, "error", err)
			if err := rc.store.Delete(context.WithoutCancel(ctx), rel.Product, rel.Version); err != nil {
				rc.log.Error("release: removing failed release", "product", rel.Product, "version", rel.Version, "error", err)
			}
			return &apiError{status: http.StatusInternalServerError, msg: "release: hook failed", err: err, result: UploadHookFailed}
		}
	}
	if err := rc.store.HookDone(context.WithoutCancel(ctx), rel.Product, rel.Version); err != nil {
		return storageError(err)
	}
	return nil
}

// RunPendingHooks runs the hook again for every stored release whose hook
// did not succeed, because the process died while it ran. Call it once at
// startup, before or while serving; it takes the same per-release lock as
// uploads, so a concurrent retry of the same upload waits and then answers
// 200. A release whose hook fails again is removed, as after a failed
// upload. It returns how many hooks it ran and the errors of those that
// failed (joined), or an error listing the store.
func (rc *Receiver) RunPendingHooks(ctx context.Context) (int, error) {
	pending, err := rc.store.Pending(ctx)
	if err != nil {
		return 0, fmt.Errorf("release: listing pending hooks: %w", err)
	}
	var errs []error
	ran := 0
	for _, key := range pending {
		product, version, _ := strings.Cut(key, "/")
		err := func() error {
			unlock, err := rc.locks.lock(ctx, key)
			if err != nil {
				return err
			}
			defer unlock()
			st, err := rc.store.Get(ctx, product, version)
			if err != nil {
				return err
			}
			if st.Hook != HookPending { // a retry ran it meanwhile
				return nil
			}
			if err := rc.store.ClaimHook(ctx, product, version); err != nil {
				return err
			}
			rel, cleanup, err := rc.localCopy(ctx, st, "")
			if err != nil {
				return err
			}
			defer cleanup()
			ran++
			rc.log.Info("release hook did not complete before; running it again", "product", product, "version", version)
			if err := rc.runHook(ctx, rel); err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.err != nil {
					err = ae.err
				}
				return err
			}
			return nil
		}()
		if err != nil {
			errs = append(errs, fmt.Errorf("release: %s: %w", key, err))
		}
	}
	return ran, errors.Join(errs...)
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

// hiddenFiles hides Dir/.incoming, every other dot file and the releases
// whose hook has not succeeded.
type hiddenFiles struct {
	fs  http.FileSystem
	dir string
}

func (h hiddenFiles) hidden(parts []string) bool {
	for _, part := range parts {
		if strings.HasPrefix(part, ".") {
			return true
		}
	}
	return len(parts) >= 2 && hookPending(filepath.Join(h.dir, parts[0], parts[1]))
}

func (h hiddenFiles) Open(name string) (http.File, error) {
	var parts []string
	for _, part := range strings.Split(name, "/") {
		if part != "" {
			parts = append(parts, part)
		}
	}
	if h.hidden(parts) {
		return nil, os.ErrNotExist
	}
	f, err := h.fs.Open(name)
	if err != nil {
		return nil, err
	}
	return hiddenDir{File: f, h: h, parts: parts}, nil
}

// hiddenDir leaves hidden entries out of a directory listing.
type hiddenDir struct {
	http.File
	h     hiddenFiles
	parts []string
}

func (d hiddenDir) Readdir(count int) ([]fs.FileInfo, error) {
	for {
		infos, err := d.File.Readdir(count)
		var out []fs.FileInfo
		for _, fi := range infos {
			if !d.h.hidden(append(d.parts[:len(d.parts):len(d.parts)], fi.Name())) {
				out = append(out, fi)
			}
		}
		// With count > 0 an empty, error-free answer would mean "more to
		// come" to no one: read on instead.
		if len(out) > 0 || err != nil || count <= 0 {
			return out, err
		}
	}
}
