package release

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/opskit/opskit/internal/atomicfile"
)

// resumeState is the file UploadFileResumable keeps between attempts.
type resumeState struct {
	Location string `json:"location"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Product  string `json:"product"`
	Version  string `json:"version"`
}

// UploadFileResumable uploads the file at path with md over the
// receiver's resumable endpoint (tus 1.0 at URL+"/uploads/", see
// Receiver.Uploads), so that an interrupted upload continues where the
// receiver stopped receiving instead of starting over.
//
// It hashes the file first (the receiver learns the checksum before the
// bytes), then creates the upload, or, when stateFile records an upload of
// the same file and release that the receiver still holds, asks for its
// offset and sends only the rest. stateFile (e.g. path+".upload") is
// written once the upload exists and removed when it is finished; the
// caller keeps it between attempts. The file must not change between
// attempts.
//
// It returns the Receipt once the receiver stored the release; the errors
// are those of Upload. An interrupted transfer returns the transport's
// error and keeps stateFile for the next call.
func (u *Uploader) UploadFileResumable(ctx context.Context, md Metadata, path, stateFile string) (Receipt, error) {
	log := u.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if u.URL == "" || u.Secret == "" || stateFile == "" {
		return Receipt{}, errors.New("release: UploadFileResumable needs URL, Secret and a state file")
	}
	sum, size, err := fileSHA256(ctx, path)
	if err != nil {
		return Receipt{}, err
	}
	client := u.Client
	if client == nil {
		client = http.DefaultClient
	}
	base, err := url.Parse(strings.TrimSuffix(u.URL, "/") + "/uploads/")
	if err != nil {
		return Receipt{}, fmt.Errorf("release: %w", err)
	}
	var st resumeState
	offset := int64(-1)
	if data, err := os.ReadFile(stateFile); err == nil && json.Unmarshal(data, &st) == nil &&
		st.SHA256 == sum && st.Size == size && st.Product == md.Product && st.Version == md.Version && st.Location != "" {
		offset, err = u.tusOffset(ctx, client, st.Location)
		if err != nil {
			return Receipt{}, err
		}
	}
	if offset < 0 {
		loc, err := u.tusCreate(ctx, client, base, md, sum, size)
		if err != nil {
			return Receipt{}, err
		}
		st = resumeState{Location: loc, SHA256: sum, Size: size, Product: md.Product, Version: md.Version}
		data, _ := json.Marshal(st)
		if err := atomicfile.WriteFile(stateFile, data, 0o600); err != nil {
			return Receipt{}, fmt.Errorf("release: %w", err)
		}
		offset = 0
	} else {
		log.Info("release upload resumed", "product", md.Product, "version", md.Version, "offset", offset, "size", size)
	}

	f, err := os.Open(path)
	if err != nil {
		return Receipt{}, fmt.Errorf("release: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return Receipt{}, fmt.Errorf("release: %w", err)
	}
	body := io.Reader(io.LimitReader(f, size-offset))
	if u.Progress != nil {
		body = &progressReader{r: body, n: offset, total: size, progress: func(sent, total int64) { u.Progress(md, sent, total) }}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, st.Location, struct{ io.Reader }{body})
	if err != nil {
		return Receipt{}, fmt.Errorf("release: %w", err)
	}
	req.ContentLength = size - offset
	u.tusHeaders(req)
	req.Header.Set("Content-Type", tusOffsetType)
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := client.Do(req)
	if err != nil {
		return Receipt{}, fmt.Errorf("release: upload %s %s: %w", md.Product, md.Version, redactURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		os.Remove(stateFile)
	}
	rcpt, err := readReply(resp)
	if err != nil {
		return Receipt{}, err
	}
	os.Remove(stateFile)
	if rcpt.SHA256 != sum || rcpt.Size != size {
		return Receipt{}, fmt.Errorf("%w: receiver confirmed sha256 %s, size %d; sent %s, size %d", ErrChecksumMismatch, rcpt.SHA256, rcpt.Size, sum, size)
	}
	log.Info("release uploaded", "product", md.Product, "version", md.Version, "sha256", sum, "size", size, "created", rcpt.Created, "resumed_at", offset)
	return rcpt, nil
}

func (u *Uploader) tusHeaders(req *http.Request) {
	req.Header.Set("Tus-Resumable", tusVersion)
	req.Header.Set("Authorization", "Bearer "+string(u.Secret))
}

// tusOffset asks for the offset of an upload; -1 when the receiver no
// longer has it.
func (u *Uploader) tusOffset(ctx context.Context, client *http.Client, loc string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, loc, nil)
	if err != nil {
		return 0, fmt.Errorf("release: %w", err)
	}
	u.tusHeaders(req)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("release: %w", redactURLError(err))
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		if err != nil || n < 0 {
			return 0, &StatusError{Code: resp.StatusCode, Method: http.MethodHead, URL: redactURL(loc), Message: "no Upload-Offset"}
		}
		return n, nil
	case http.StatusNotFound, http.StatusGone:
		return -1, nil
	case http.StatusUnauthorized:
		return 0, ErrUnauthorized
	}
	return 0, &StatusError{Code: resp.StatusCode, Method: http.MethodHead, URL: redactURL(loc)}
}

func (u *Uploader) tusCreate(ctx context.Context, client *http.Client, base *url.URL, md Metadata, sum string, size int64) (string, error) {
	rpms := ""
	if md.RPMs {
		rpms = "1"
	}
	fields := map[string]string{"product": md.Product, "version": md.Version, "tag": md.Tag, "build": md.Build,
		"revision": md.Revision, "commit": md.Commit, "log": md.Log, "rpms": rpms, "sha256": sum}
	var pairs []string
	for k, v := range fields {
		if v != "" {
			pairs = append(pairs, k+" "+base64.StdEncoding.EncodeToString([]byte(v)))
		}
	}
	sort.Strings(pairs)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String(), nil)
	if err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	u.tusHeaders(req)
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", strings.Join(pairs, ","))
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("release: %w", redactURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		_, err := readReply(resp)
		if err == nil {
			err = &StatusError{Code: resp.StatusCode, Method: http.MethodPost, URL: redactURL(base.String())}
		}
		return "", err
	}
	loc, err := base.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return "", &StatusError{Code: resp.StatusCode, Method: http.MethodPost, URL: redactURL(base.String()), Message: "no Location"}
	}
	return loc.String(), nil
}

// progressReader reports the bytes read so far.
type progressReader struct {
	r        io.Reader
	n, total int64
	progress func(int64, int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if n > 0 {
		p.progress(p.n, p.total)
	}
	return n, err
}
