package release

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/opskit/opskit/internal/atomicfile"
	"github.com/opskit/opskit/internal/secret"
)

// Resumable uploads follow tus 1.0 (https://tus.io/protocols/resumable-upload)
// with the creation, checksum, expiration and termination extensions. tus
// rather than the IETF resumable-upload draft: tus is a finished, stable
// protocol with many client implementations, while the draft still changes
// its headers and status codes between revisions.

const (
	tusVersion       = "1.0.0"
	tusDirName       = "tus"
	tusStateName     = "state.json"
	maxTusUploads    = 64 // unfinished resumable uploads kept at most
	tusOffsetType    = "application/offset+octet-stream"
	statusChecksumNG = 460 // tus checksum extension: "Checksum Mismatch"
)

// DefaultResumableExpiry is the ResumableExpiry used when
// ReceiverConfig.ResumableExpiry is 0.
const DefaultResumableExpiry = 24 * time.Hour

// tusState is Dir/.incoming/tus/<id>/state.json.
type tusState struct {
	Fields    map[string]string `json:"fields"` // the form fields, sha256 included
	Length    int64             `json:"length"`
	Created   time.Time         `json:"created"`
	HashAt    int64             `json:"hash_at"`    // bytes covered by HashState
	HashState []byte            `json:"hash_state"` // marshalled SHA-256 of the first HashAt bytes
}

// Uploads returns the resumable-upload endpoint (tus 1.0): mount it
// without http.StripPrefix at the upload URL plus "/uploads/", e.g.
// mux.Handle("/release/uploads/", rc.Uploads()), where
// Uploader.UploadFileResumable finds it. Every request needs the
// "Authorization: Bearer" secret.
//
//	POST    /release/uploads/      creates an upload: Upload-Length, and
//	                               Upload-Metadata with product, version,
//	                               sha256 (hex, required) and the optional
//	                               fields; 201 with Location
//	HEAD    /release/uploads/<id>  Upload-Offset: the bytes received
//	PATCH   /release/uploads/<id>  appends at Upload-Offset (409 if it is
//	                               not the current offset); an optional
//	                               Upload-Checksum ("sha256 <base64>" or
//	                               "sha1 ...") of this request's bytes is
//	                               checked (460 on mismatch, nothing kept)
//	DELETE  /release/uploads/<id>  abandons the upload
//
// Intermediate PATCHes answer 204 with Upload-Offset. The PATCH that
// completes the file answers like POST /release (201, 200, 409, 422, 500,
// ... with the same JSON bodies), after the same checks and the hook.
// Unfinished uploads live in Dir/.incoming/tus, survive a restart, are
// limited to 64 (then 503), and expire ResumableExpiry after their last
// PATCH. The metadata travels in a header, so the changelog is limited by
// the server's MaxHeaderBytes.
func (rc *Receiver) Uploads() http.Handler {
	return http.HandlerFunc(rc.serveTus)
}

func (rc *Receiver) tusDir() string { return filepath.Join(rc.dir, incomingName, tusDirName) }

func (rc *Receiver) serveTus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	if r.Method == http.MethodOptions {
		w.Header().Set("Tus-Version", tusVersion)
		w.Header().Set("Tus-Extension", "creation,checksum,expiration,termination")
		w.Header().Set("Tus-Checksum-Algorithm", "sha256,sha1")
		w.Header().Set("Tus-Max-Size", strconv.FormatInt(rc.maxSize, 10))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	collection := strings.HasSuffix(r.URL.Path, "/")
	id := path.Base(r.URL.Path)
	// POST and PATCH are counted and traced (see NewMetrics); HEAD and
	// DELETE are not.
	var obs *observation
	switch r.Method {
	case http.MethodPost:
		r, obs = rc.observe(r, "release upload create", attribute.Bool("release.resumable", true))
	case http.MethodPatch:
		r, obs = rc.observe(r, "release upload patch", attribute.Bool("release.resumable", true), attribute.String("release.upload_id", id))
	}
	defer obs.abandon()
	if r.Header.Get("Tus-Resumable") != tusVersion {
		w.Header().Set("Tus-Version", tusVersion)
		obs.fail(w, fail(http.StatusPreconditionFailed, "release: Tus-Resumable 1.0.0 required"))
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !secret.AnyEqual(tok, rc.secrets...) {
		obs.fail(w, fail(http.StatusUnauthorized, "release: wrong secret"))
		return
	}
	switch {
	case collection && r.Method == http.MethodPost:
		rc.tusCreate(w, r, obs)
	case !collection && validHex(id, 32) && r.Method == http.MethodHead:
		rc.tusHead(w, r, id)
	case !collection && validHex(id, 32) && r.Method == http.MethodPatch:
		rc.tusPatch(w, r, id, obs)
	case !collection && validHex(id, 32) && r.Method == http.MethodDelete:
		unlock, err := rc.locks.lock(r.Context(), "tus/"+id)
		if err != nil {
			return
		}
		defer unlock()
		if _, err := rc.loadTus(id); err != nil {
			tusFail(w, err)
			return
		}
		os.RemoveAll(filepath.Join(rc.tusDir(), id))
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "OPTIONS, POST, HEAD, PATCH, DELETE")
		obs.fail(w, fail(http.StatusMethodNotAllowed, "release: method not allowed"))
	}
}

// tusFail answers a failure; HEAD gets no body.
func tusFail(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, msg: "release: internal error", err: err}
	}
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	fields := ae.fields
	if fields == nil {
		fields = []string{}
	}
	writeJSON(w, ae.status, map[string]any{"error": ae.msg, "fields": fields})
}

// fail answers a failure of a counted resumable request and counts it; a
// nil o only answers.
func (o *observation) fail(w http.ResponseWriter, err error) {
	o.end(Release{}, false, err) // counted before the client has its answer
	tusFail(w, err)
}

// parseTusMetadata decodes "key base64,key base64".
func parseTusMetadata(h string) (map[string]string, error) {
	m := map[string]string{}
	if strings.TrimSpace(h) == "" {
		return m, nil
	}
	for _, pair := range strings.Split(h, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(pair), " ")
		if k == "" {
			return nil, errors.New("empty key")
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("duplicate %s", k)
		}
		m[k] = string(b)
	}
	return m, nil
}

func (rc *Receiver) tusCreate(w http.ResponseWriter, r *http.Request, obs *observation) {
	length, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
	if err != nil || length < 0 {
		obs.fail(w, fail(http.StatusBadRequest, "release: Upload-Length required (deferred length is not supported)", "file"))
		return
	}
	if length > rc.maxSize {
		w.Header().Set("Tus-Max-Size", strconv.FormatInt(rc.maxSize, 10))
		obs.fail(w, fail(http.StatusRequestEntityTooLarge, "release: too large", "file"))
		return
	}
	meta, err := parseTusMetadata(r.Header.Get("Upload-Metadata"))
	if err != nil {
		obs.fail(w, &apiError{status: http.StatusBadRequest, msg: "release: malformed Upload-Metadata", err: err})
		return
	}
	fields := map[string]string{}
	for k, v := range meta {
		if knownField(k) {
			fields[k] = v
		}
	}
	if _, ok := fields["sha256"]; !ok {
		obs.fail(w, fail(http.StatusBadRequest, "release: missing or invalid fields", "sha256"))
		return
	}
	delete(fields, "md5")
	// Check every field now, before a byte of the file is sent.
	if _, err := rc.validate(&upload{fields: fields, fileSeen: true, sha256: strings.ToLower(fields["sha256"]), size: length}); err != nil {
		obs.fail(w, err)
		return
	}
	rc.sweepTus()
	entries, _ := os.ReadDir(rc.tusDir())
	if len(entries) >= maxTusUploads {
		obs.fail(w, fail(http.StatusServiceUnavailable, "release: too many unfinished resumable uploads; retry later"))
		return
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	dir := filepath.Join(rc.tusDir(), id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		obs.fail(w, storageError(err))
		return
	}
	st := tusState{Fields: fields, Length: length, Created: time.Now().UTC()}
	if err := writeSynced(filepath.Join(dir, tarballName), nil); err != nil {
		os.RemoveAll(dir)
		obs.fail(w, storageError(err))
		return
	}
	if err := saveTus(dir, st); err != nil {
		os.RemoveAll(dir)
		obs.fail(w, storageError(err))
		return
	}
	rc.log.Info("resumable upload created", "id", id, "product", fields["product"], "version", fields["version"], "length", length)
	w.Header().Set("Location", strings.TrimSuffix(r.URL.Path, "/")+"/"+id)
	w.Header().Set("Upload-Expires", time.Now().Add(rc.tusExpiry).UTC().Format(http.TimeFormat))
	obs.partial(attribute.String("release.upload_id", id), attribute.String("release.product", fields["product"]),
		attribute.String("release.version", fields["version"]), attribute.Int64("release.size", length))
	w.WriteHeader(http.StatusCreated)
}

func saveTus(dir string, st tusState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, tusStateName), data, 0o600)
}

// loadTus reads an unexpired upload's state; a missing or expired one is
// 404.
func (rc *Receiver) loadTus(id string) (tusState, error) {
	dir := filepath.Join(rc.tusDir(), id)
	p := filepath.Join(dir, tusStateName)
	fi, err := os.Stat(p)
	if err == nil && time.Since(fi.ModTime()) > rc.tusExpiry {
		os.RemoveAll(dir)
		err = os.ErrNotExist
	}
	if err != nil {
		return tusState{}, fail(http.StatusNotFound, "release: no such upload (finished, expired or never created)")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return tusState{}, storageError(err)
	}
	var st tusState
	if err := json.Unmarshal(data, &st); err != nil {
		return tusState{}, storageError(err)
	}
	return st, nil
}

// sweepTus removes the uploads whose last PATCH is older than the expiry.
func (rc *Receiver) sweepTus() {
	entries, err := os.ReadDir(rc.tusDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(rc.tusDir(), e.Name(), tusStateName))
		if err != nil || time.Since(fi.ModTime()) > rc.tusExpiry {
			if !validHex(e.Name(), 32) {
				continue
			}
			unlock, lerr := rc.locks.lock(context.Background(), "tus/"+e.Name())
			if lerr != nil {
				continue
			}
			if fi, err := os.Stat(filepath.Join(rc.tusDir(), e.Name(), tusStateName)); err != nil || time.Since(fi.ModTime()) > rc.tusExpiry {
				os.RemoveAll(filepath.Join(rc.tusDir(), e.Name()))
			}
			unlock()
		}
	}
}

func fileLen(p string) (int64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (rc *Receiver) tusHead(w http.ResponseWriter, r *http.Request, id string) {
	unlock, err := rc.locks.lock(r.Context(), "tus/"+id)
	if err != nil {
		return
	}
	defer unlock()
	st, err := rc.loadTus(id)
	if err != nil {
		var ae *apiError
		errors.As(err, &ae)
		w.WriteHeader(ae.status)
		return
	}
	n, err := fileLen(filepath.Join(rc.tusDir(), id, tarballName))
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(n, 10))
	w.Header().Set("Upload-Length", strconv.FormatInt(st.Length, 10))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// chunkHash parses Upload-Checksum into a hash and the expected sum.
func chunkHash(h string) (hash.Hash, []byte, error) {
	if h == "" {
		return nil, nil, nil
	}
	algo, b64, ok := strings.Cut(h, " ")
	want, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil {
		return nil, nil, errors.New("malformed Upload-Checksum")
	}
	switch algo {
	case "sha256":
		return sha256.New(), want, nil
	case "sha1":
		return sha1.New(), want, nil
	}
	return nil, nil, errors.New("unsupported Upload-Checksum algorithm")
}

func (rc *Receiver) tusPatch(w http.ResponseWriter, r *http.Request, id string, obs *observation) {
	if r.Header.Get("Content-Type") != tusOffsetType {
		obs.fail(w, fail(http.StatusUnsupportedMediaType, "release: Content-Type must be "+tusOffsetType))
		return
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		obs.fail(w, fail(http.StatusBadRequest, "release: Upload-Offset required"))
		return
	}
	chunkH, chunkWant, err := chunkHash(r.Header.Get("Upload-Checksum"))
	if err != nil {
		obs.fail(w, &apiError{status: http.StatusBadRequest, msg: "release: " + err.Error()})
		return
	}
	up := &upload{}
	if err := rc.takeSlot(up); err != nil {
		obs.fail(w, err)
		return
	}
	defer rc.freeSlot()
	unlock, err := rc.locks.lock(r.Context(), "tus/"+id)
	if err != nil {
		return
	}
	defer unlock()
	st, err := rc.loadTus(id)
	if err != nil {
		obs.fail(w, err)
		return
	}
	dir := filepath.Join(rc.tusDir(), id)
	tgz := filepath.Join(dir, tarballName)
	have, err := fileLen(tgz)
	if err != nil {
		obs.fail(w, storageError(err))
		return
	}
	if offset != have {
		w.Header().Set("Upload-Offset", strconv.FormatInt(have, 10))
		obs.fail(w, &apiError{status: http.StatusConflict, msg: "release: Upload-Offset does not match the upload's offset", result: UploadInvalid})
		return
	}
	// The SHA-256 of the whole file so far: saved after the last PATCH, or
	// computed again if a crash left the file and the state apart.
	full := sha256.New()
	if st.HashAt != have || full.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.HashState) != nil {
		full = sha256.New()
		if err := hashFile(r.Context(), full, tgz, have); err != nil {
			obs.fail(w, storageError(err))
			return
		}
	}
	f, err := os.OpenFile(tgz, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		obs.fail(w, storageError(err))
		return
	}
	defer f.Close()
	idle := &idleReader{r: r.Body, ctrl: http.NewResponseController(w), timeout: rc.idle, deadline: time.Now().Add(rc.upTO)}
	defer idle.stop()
	dsts := []io.Writer{f, full}
	if chunkH != nil {
		dsts = append(dsts, chunkH)
	}
	n, copyErr := io.CopyBuffer(io.MultiWriter(dsts...), io.LimitReader(rc.metrics.received(idle), st.Length-have+1), make([]byte, 256<<10))
	idle.stop()
	if have+n > st.Length {
		f.Truncate(have)
		obs.fail(w, fail(http.StatusRequestEntityTooLarge, "release: more bytes than Upload-Length", "file"))
		return
	}
	if chunkH != nil && copyErr == nil && string(chunkH.Sum(nil)) != string(chunkWant) {
		f.Truncate(have)
		obs.fail(w, fail(statusChecksumNG, "release: checksum mismatch", "Upload-Checksum"))
		return
	}
	if chunkH != nil && copyErr != nil {
		f.Truncate(have) // a checked chunk is kept whole or not at all
		n = 0
		full = nil
	}
	if err := f.Sync(); err != nil {
		obs.fail(w, storageError(err))
		return
	}
	have += n
	if full != nil {
		if state, err := full.(encoding.BinaryMarshaler).MarshalBinary(); err == nil {
			st.HashAt, st.HashState = have, state
		}
	}
	if err := saveTus(dir, st); err != nil {
		obs.fail(w, storageError(err))
		return
	}
	if copyErr != nil {
		rc.log.Info("resumable upload interrupted", "id", id, "offset", have, "error", copyErr)
		obs.fail(w, bodyError(copyErr))
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(have, 10))
	if have < st.Length {
		obs.partial(attribute.Int64("release.upload_offset", have))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// Complete: verify and store it like a form upload.
	if full == nil {
		full = sha256.New()
		if err := hashFile(r.Context(), full, tgz, have); err != nil {
			obs.fail(w, storageError(err))
			return
		}
	}
	os.Remove(filepath.Join(dir, tusStateName))
	fin := &upload{fields: st.Fields, fileSeen: true, size: have, sha256: hex.EncodeToString(full.Sum(nil)), stage: dir}
	defer func() {
		if fin.stage != "" {
			os.RemoveAll(fin.stage)
		}
	}()
	rel, created, err := rc.finish(r.Context(), fin)
	if obs != nil {
		obs.start = st.Created // the resumable upload's duration runs from its creation
	}
	obs.end(rel, created, err)
	rc.reply(w, r, rel, created, err)
}

// finish validates a received upload and commits it.
func (rc *Receiver) finish(ctx context.Context, up *upload) (Release, bool, error) {
	rel, err := rc.validate(up)
	if err != nil {
		return rel, false, err
	}
	return rc.commit(ctx, up, rel)
}
