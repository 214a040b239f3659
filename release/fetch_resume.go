package release

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opskit/opskit/internal/atomicfile"
)

// reprSHA256 returns the sha-256 of an RFC 9530 Repr-Digest header as
// lowercase hex, or "" when there is none.
func reprSHA256(h http.Header) string {
	for _, v := range h.Values("Repr-Digest") {
		for _, member := range strings.Split(v, ",") {
			name, val, ok := strings.Cut(strings.TrimSpace(member), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "sha-256") {
				continue
			}
			val = strings.TrimSpace(val)
			if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1])
			if err == nil && len(raw) == sha256.Size {
				return hex.EncodeToString(raw)
			}
		}
	}
	return ""
}

func fileSize(path string) int64 {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return 0
}

// partial is a download kept across Fetch calls: dst+".partial" and the
// ETag it was fetched under in dst+".partial.etag".
type partial struct {
	dst, path, etagPath string
	have                int64 // bytes kept
	etag                string
}

func openPartial(dst string) *partial {
	p := &partial{dst: dst, path: dst + ".partial", etagPath: dst + ".partial.etag"}
	etag, err := os.ReadFile(p.etagPath)
	if fi, serr := os.Stat(p.path); serr == nil && fi.Mode().IsRegular() && err == nil && len(etag) > 0 {
		p.have, p.etag = fi.Size(), strings.TrimSpace(string(etag))
	}
	return p
}

// request asks for the rest of the kept download, if any.
func (p *partial) request(req *http.Request) {
	if p.have > 0 && p.etag != "" {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(p.have, 10)+"-")
		req.Header.Set("If-Range", p.etag)
	}
}

// remove deletes the kept download; p may be nil.
func (p *partial) remove() {
	if p != nil {
		os.Remove(p.path)
		os.Remove(p.etagPath)
	}
}

// download appends resp (206 for the rest, or 200 for all of it) to the
// partial file, verifies the whole file against want and renames it over
// dst. An interrupted transfer keeps the partial file for the next Fetch.
func (p *partial) download(ctx context.Context, f *Fetcher, resp *http.Response, url, want string, perm fs.FileMode, log *slog.Logger) (FetchResult, error) {
	h := sha256.New()
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if resp.StatusCode == http.StatusPartialContent {
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != p.have {
			p.remove()
			return FetchResult{}, fmt.Errorf("release: fetch: %s answered Range bytes=%d- with Content-Range %q", url, p.have, resp.Header.Get("Content-Range"))
		}
		if err := hashFile(ctx, h, p.path, p.have); err != nil {
			p.remove()
			return FetchResult{}, err
		}
		flags = os.O_WRONLY | os.O_APPEND
	} else {
		p.have = 0
	}
	etag := resp.Header.Get("ETag")
	if strings.HasPrefix(etag, "W/") {
		etag = "" // a weak ETag cannot validate a range
	}
	if err := os.WriteFile(p.etagPath, []byte(etag+"\n"), 0o600); err != nil {
		return FetchResult{}, fmt.Errorf("release: %w", err)
	}
	out, err := os.OpenFile(p.path, flags, 0o600)
	if err != nil {
		return FetchResult{}, fmt.Errorf("release: %w", err)
	}
	defer out.Close()
	total := resp.ContentLength
	if total >= 0 {
		total += p.have
	}
	cw := &progressWriter{w: out, h: h, n: p.have, total: total, progress: f.Progress}
	n, err := io.CopyBuffer(cw, ctxReader{ctx, resp.Body}, make([]byte, 256<<10))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			err = we.err
		}
		log.Info("release fetch interrupted; kept for resuming", "dst", p.dst, "bytes", p.have+n)
		return FetchResult{}, fmt.Errorf("release: fetch: %w", err)
	}
	size := p.have + n
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		out.Close()
		p.remove()
		return FetchResult{}, fmt.Errorf("%w: %s has sha256 %s, want %s", ErrChecksumMismatch, url, got, want)
	}
	if err := out.Sync(); err != nil {
		return FetchResult{}, fmt.Errorf("release: %w", err)
	}
	if err := out.Chmod(perm); err != nil {
		return FetchResult{}, fmt.Errorf("release: %w", err)
	}
	if err := out.Close(); err != nil {
		return FetchResult{}, fmt.Errorf("release: %w", err)
	}
	if err := os.Rename(p.path, p.dst); err != nil {
		return FetchResult{}, fmt.Errorf("release: %w", err)
	}
	os.Remove(p.etagPath)
	if err := atomicfile.SyncDir(filepath.Dir(p.dst)); err != nil {
		return FetchResult{}, fmt.Errorf("release: %w", err)
	}
	log.Info("release fetched", "dst", p.dst, "size", size, "resumed_at", p.have)
	return FetchResult{Size: size}, nil
}

// contentRangeStart parses "bytes START-END/TOTAL".
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}

// hashFile feeds the first n bytes of path to h.
func hashFile(ctx context.Context, h hash.Hash, path string, n int64) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	defer fh.Close()
	got, err := io.CopyBuffer(h, ctxReader{ctx, io.LimitReader(fh, n)}, make([]byte, 256<<10))
	if err != nil {
		return fmt.Errorf("release: hashing %s: %w", path, err)
	}
	if got != n {
		return fmt.Errorf("release: %s is shorter than %d bytes", path, n)
	}
	return nil
}
