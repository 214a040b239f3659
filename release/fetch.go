package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/opskit/opskit/internal/atomicfile"
)

// Fetcher downloads a file unless the destination already has the expected
// checksum. The zero value is ready to use.
type Fetcher struct {
	// Client sends the request; nil means http.DefaultClient.
	Client *http.Client
	// Secret, if set, is sent as "Authorization: Bearer <secret>".
	Secret Secret
	// Progress, if set, is called after each chunk downloaded with the bytes
	// so far and the total (-1 when the server sent no length).
	Progress func(done, total int64)
	// Logger receives one event per fetch; nil discards.
	Logger *slog.Logger
	// Mode says when to download; the zero value is VerifyChecksum.
	Mode FetchMode
	// Resume keeps an interrupted download as dst+".partial" (with its
	// ETag in dst+".partial.etag") instead of removing it, and the next
	// Fetch of the same dst continues it with a Range request (If-Range:
	// that ETag), hashing the kept bytes first, so the whole file is
	// verified. A server that ignores the Range or whose file changed
	// sends the whole file again. A checksum mismatch removes both files.
	Resume bool
}

// FetchMode says when Fetch downloads.
type FetchMode int

const (
	// VerifyChecksum downloads unless dst already has the expected
	// checksum (given, or the server's Repr-Digest).
	VerifyChecksum FetchMode = iota
	// ExistsOrDownload keeps a dst that exists as it is, without hashing
	// it or asking the server: for files that change often, existence
	// decides. A missing dst is downloaded and verified.
	ExistsOrDownload
)

// FetchResult says what Fetch did.
type FetchResult struct {
	// Skipped is true when dst already had the checksum and nothing was
	// downloaded.
	Skipped bool
	// Size is dst's size in bytes.
	Size int64
}

// Fetch is (&Fetcher{}).Fetch: the "validate checksum or download" step.
func Fetch(ctx context.Context, url, dst, sha256Hex string) (FetchResult, error) {
	var f Fetcher
	return f.Fetch(ctx, url, dst, sha256Hex)
}

// Fetch makes dst a file whose SHA-256 is sha256Hex. When dst already has
// that checksum it downloads nothing. Otherwise it downloads url into a
// temporary file beside dst while hashing, verifies the checksum, fsyncs and
// renames the file over dst (keeping dst's permissions, or 0644 for a new
// file).
//
// sha256Hex may be "": the expected checksum is then the server's
// Repr-Digest (RFC 9530, sha-256), as Receiver.Files sends it; an existing
// dst is offered to the server with If-None-Match (its quoted hex SHA-256,
// Files' ETag) and kept on 304 or when the digest matches it. Without a
// checksum from either side Fetch fails with a *FieldError naming sha256.
// When both are known and differ, Fetch fails with ErrChecksumMismatch
// before downloading. See Fetcher.Mode and Fetcher.Resume for the other
// choices.
//
// On any failure dst is exactly as it was before and no temporary file is
// left (except the ".partial" file that Fetcher.Resume keeps). The errors:
//
//   - *FieldError with Fields ["sha256"] when sha256Hex is neither empty
//     nor 64 hex
//     characters; its Rules say what is wrong ("has length 7, want 64 hex
//     characters", "has non-hex character 'g' at index 5"). Nothing is
//     read or requested.
//   - ErrChecksumMismatch when the downloaded bytes have another checksum.
//   - *StatusError for an HTTP status other than 200 (or 206 when
//     resuming), naming the method and url (without user info or query
//     values).
//   - An error for which errors.Is(err, context.Canceled) (or
//     context.DeadlineExceeded) holds when ctx ends first.
//   - An error wrapping the *url.Error of a failed request (url without
//     credentials), an invalid url, or the file system's error (e.g.
//     fs.ErrPermission) for dst, its directory or the temporary file.
func (f *Fetcher) Fetch(ctx context.Context, url, dst, sha256Hex string) (FetchResult, error) {
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if rule := checksumRule(sha256Hex, 64); sha256Hex != "" && rule != "" {
		return FetchResult{}, &FieldError{Fields: []string{"sha256"}, Reason: "fetch: invalid argument", Rules: []string{"sha256 checksum" + rule}}
	}
	want := strings.ToLower(sha256Hex)
	perm := fs.FileMode(0o644)
	have := "" // dst's checksum, when hashed
	if fi, err := os.Stat(dst); err == nil && fi.Mode().IsRegular() {
		perm = fi.Mode().Perm()
		if f.Mode == ExistsOrDownload {
			log.Info("release fetch skipped: file exists", "dst", dst)
			return FetchResult{Skipped: true, Size: fi.Size()}, nil
		}
		sum, n, err := fileSHA256(ctx, dst)
		if err != nil {
			return FetchResult{}, err
		}
		if sum == want {
			log.Info("release fetch skipped: checksum matches", "dst", dst)
			return FetchResult{Skipped: true, Size: n}, nil
		}
		have = sum
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return FetchResult{}, fmt.Errorf("release: fetch: %w", redactURLError(err))
	}
	if f.Secret != "" {
		req.Header.Set("Authorization", "Bearer "+string(f.Secret))
	}
	if want == "" && have != "" {
		req.Header.Set("If-None-Match", `"`+have+`"`)
	}
	var part *partial
	if f.Resume {
		part = openPartial(dst)
		part.request(req)
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return FetchResult{}, fmt.Errorf("release: fetch: %w", redactURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && have != "" {
		log.Info("release fetch skipped: not modified", "dst", dst)
		return FetchResult{Skipped: true, Size: fileSize(dst)}, nil
	}
	if resp.StatusCode != http.StatusOK && !(resp.StatusCode == http.StatusPartialContent && part != nil) {
		return FetchResult{}, &StatusError{Code: resp.StatusCode, Method: http.MethodGet, URL: redactURL(url)}
	}
	if digest := reprSHA256(resp.Header); digest != "" {
		switch {
		case want == "":
			want = digest
		case digest != want:
			part.remove()
			return FetchResult{}, fmt.Errorf("%w: %s has sha256 %s (Repr-Digest), want %s", ErrChecksumMismatch, url, digest, want)
		}
	}
	if want == "" {
		return FetchResult{}, &FieldError{Fields: []string{"sha256"}, Reason: "no checksum given and the server sent no Repr-Digest"}
	}
	if have == want {
		log.Info("release fetch skipped: checksum matches Repr-Digest", "dst", dst)
		return FetchResult{Skipped: true, Size: fileSize(dst)}, nil
	}
	if part != nil {
		return part.download(ctx, f, resp, url, want, perm, log)
	}

	tmp, err := atomicfile.Create(dst, perm)
	if err != nil {
		return FetchResult{}, fmt.Errorf("release: %w", err)
	}
	defer tmp.Abort()
	h := sha256.New()
	cw := &progressWriter{w: tmp, h: h, total: resp.ContentLength, progress: f.Progress}
	n, err := io.CopyBuffer(cw, ctxReader{ctx, resp.Body}, make([]byte, 256<<10))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			err = we.err
		}
		return FetchResult{}, fmt.Errorf("release: fetch: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return FetchResult{}, fmt.Errorf("%w: %s has sha256 %s, want %s", ErrChecksumMismatch, redactURL(url), got, want)
	}
	if err := tmp.Commit(); err != nil {
		return FetchResult{}, fmt.Errorf("release: %w", err)
	}
	log.Info("release fetched", "dst", dst, "size", n)
	return FetchResult{Size: n}, nil
}

// fileSHA256 hashes the file at path, stopping when ctx is cancelled.
func fileSHA256(ctx context.Context, path string) (string, int64, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("release: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, fh}, make([]byte, 256<<10))
	if err != nil {
		return "", n, fmt.Errorf("release: hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, c.ctx.Err()
	}
	return c.r.Read(p)
}
