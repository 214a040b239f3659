package release

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"
)

// Files returns an http.Handler that serves the stored releases read-only,
// e.g. GET /<product>/<version>/release.tgz when mounted with
// http.StripPrefix, for Fetch on the other side. It serves from the
// Receiver's Store, whichever it is, and never serves uploads in progress,
// a release whose hook has not succeeded, or any name starting with a dot.
//
// release.tgz and release.env are served with a strong ETag (the quoted
// hex SHA-256 of the file), Repr-Digest (RFC 9530: sha-256 of the whole
// file, also on 206 answers), Last-Modified, and Range, If-Range and
// If-None-Match support. With the default DirStore, directories are
// listed (without the hidden entries above); other stores list nothing.
func (rc *Receiver) Files() http.Handler {
	h := &filesHandler{store: rc.store}
	if ds, ok := rc.store.(DirStore); ok {
		h.listing = http.FileServer(hiddenFiles{http.Dir(ds.Dir), ds.Dir})
	}
	return h
}

type filesHandler struct {
	store   Store
	listing http.Handler // nil: no directory listings
}

func (h *filesHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) == 3 && ValidName(parts[0]) && ValidName(parts[1]) && (parts[2] == tarballName || parts[2] == envName) {
		h.serveFile(w, r, parts[0], parts[1], parts[2])
		return
	}
	if h.listing != nil {
		h.listing.ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}

func (h *filesHandler) serveFile(w http.ResponseWriter, r *http.Request, product, version, name string) {
	ctx := r.Context()
	st, err := h.store.Get(ctx, product, version)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "release: reading the store failed", http.StatusInternalServerError)
		return
	}
	if st.Hook != HookDone {
		http.NotFound(w, r) // not served until its hook succeeded
		return
	}
	f, err := h.store.Open(ctx, product, version, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "release: reading the store failed", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	content := io.ReadSeeker(f)
	sum := st.SHA256
	if name == envName {
		// Small (the changelog is at most 1 MiB): hash it here.
		data, err := io.ReadAll(io.LimitReader(f, 4<<20))
		if err != nil {
			http.Error(w, "release: reading the store failed", http.StatusInternalServerError)
			return
		}
		d := sha256.Sum256(data)
		sum = hex.EncodeToString(d[:])
		content = bytes.NewReader(data)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	if raw, err := hex.DecodeString(sum); err == nil && len(raw) == sha256.Size {
		w.Header().Set("ETag", `"`+sum+`"`)
		w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":")
	}
	http.ServeContent(w, r, name, f.ModTime(), content)
}
