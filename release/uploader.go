package release

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
)

// Uploader sends releases to a Receiver: the build-server side of the
// release API. It streams the file and its Metadata in one multipart body
// with constant memory, hashing the file while it is sent and sending the
// sha256 field after the file part.
//
// The zero value is not usable: URL and Secret are required. An Uploader
// holds no resources and may be used concurrently.
type Uploader struct {
	// URL is the receiver's endpoint, e.g. "https://updates.example/release".
	URL string
	// Secret is sent as "Authorization: Bearer <secret>".
	Secret Secret
	// Client sends the request; nil uses a client with a private transport
	// and no overall timeout (cancel the context instead).
	Client *http.Client
	// Progress, if set, is called from the uploading goroutine after each
	// chunk of the file has been handed to the connection, with the
	// Metadata of the upload it reports, the bytes sent so far and the
	// total (-1 when unknown). Concurrent uploads call it concurrently, each
	// with its own Metadata, so one Uploader can serve them all; Progress
	// must synchronise what it shares.
	Progress func(md Metadata, sent, total int64)
	// Logger receives one event per upload; nil discards.
	Logger *slog.Logger
}

// UploadFile uploads the file at path with md. See Upload.
func (u *Uploader) UploadFile(ctx context.Context, md Metadata, path string) (Receipt, error) {
	f, err := os.Open(path)
	if err != nil {
		return Receipt{}, fmt.Errorf("release: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Receipt{}, fmt.Errorf("release: %w", err)
	}
	size := fi.Size()
	if !fi.Mode().IsRegular() {
		size = -1
	}
	return u.Upload(ctx, md, f, size)
}

// Upload streams size bytes from r as the release described by md
// (size -1 when unknown; the request is then chunked). It returns the
// receiver's Receipt only when the receiver confirmed the checksum computed
// while sending.
//
// Before it connects, Upload checks md with Metadata.Validate, the
// receiver's own rules: an invalid release is a *FieldError whose Rules
// name the field and the rule, and nothing is read or sent.
//
// Errors: *FieldError (invalid md, or 400), ErrUnauthorized (401),
// ErrConflict (409), ErrTooLarge (413), ErrChecksumMismatch (422, or a
// receipt with another checksum), *StatusError for any other status (it
// names the method and the URL without credentials), and an error for which
// errors.Is(err, context.Canceled) holds when ctx is cancelled, which aborts
// the transfer. Upload does not return while a Read on r is in progress, so
// r must not block indefinitely (files and pipes closed by their writer are
// fine).
func (u *Uploader) Upload(ctx context.Context, md Metadata, r io.Reader, size int64) (Receipt, error) {
	log := u.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if u.URL == "" || u.Secret == "" {
		return Receipt{}, errors.New("release: Uploader needs URL and Secret")
	}
	if err := md.Validate(); err != nil {
		return Receipt{}, err
	}
	client := u.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.WriteBufferSize = 256 << 10
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	total := int64(-1)
	if size >= 0 {
		n, err := bodyLength(mw.Boundary(), md, size)
		if err != nil {
			return Receipt{}, err
		}
		total = n
	}
	// The transport reads its body 32 KiB at a time; a large buffer in
	// between takes whole chunks from the pipe, so the two goroutines hand
	// over 8 times less often.
	body := struct{ io.Reader }{bufio.NewReaderSize(pr, 1<<20)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.URL, body)
	if err != nil {
		return Receipt{}, fmt.Errorf("release: %w", redactURLError(err))
	}
	req.ContentLength = total
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+string(u.Secret))
	req.Header.Set(checksumHint, "sha256")
	req.Header.Set("Accept", "application/json")
	if total > 0 {
		// Let the receiver refuse (401, 413) before any of the file is sent.
		req.Header.Set("Expect", "100-continue")
	}

	type result struct {
		sum string
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		var progress func(int64, int64)
		if u.Progress != nil {
			progress = func(sent, total int64) { u.Progress(md, sent, total) }
		}
		sum, n, err := writeBody(mw, md, r, size, progress)
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
		done <- result{sum, n, err}
	}()

	resp, err := client.Do(req)
	// Stop the body writer whatever happened: a server may answer early.
	pr.CloseWithError(errRequestDone)
	sent := <-done
	if err != nil {
		if ctx.Err() != nil {
			return Receipt{}, fmt.Errorf("release: upload %s %s: %w", md.Product, md.Version, ctx.Err())
		}
		if sent.err != nil && !errors.Is(sent.err, errRequestDone) {
			return Receipt{}, fmt.Errorf("release: upload %s %s: %w", md.Product, md.Version, sent.err)
		}
		return Receipt{}, fmt.Errorf("release: upload %s %s: %w", md.Product, md.Version, redactURLError(err))
	}
	defer resp.Body.Close()
	rcpt, err := readReply(resp)
	if err != nil {
		log.Warn("release upload failed", "product", md.Product, "version", md.Version, "status", resp.StatusCode, "error", err)
		return Receipt{}, err
	}
	if sent.err != nil || rcpt.SHA256 != sent.sum || rcpt.Size != sent.n {
		return Receipt{}, fmt.Errorf("%w: receiver confirmed sha256 %s, size %d; sent %s, size %d",
			ErrChecksumMismatch, rcpt.SHA256, rcpt.Size, sent.sum, sent.n)
	}
	log.Info("release uploaded", "product", md.Product, "version", md.Version, "sha256", rcpt.SHA256,
		"size", rcpt.Size, "created", rcpt.Created)
	return rcpt, nil
}

// errRequestDone stops the body writer once the request has finished.
var errRequestDone = errors.New("release: request finished")

// writeFields writes md's non-empty fields as form fields.
func writeFields(mw *multipart.Writer, md Metadata) error {
	rpms := ""
	if md.RPMs {
		rpms = "1"
	}
	for _, f := range [][2]string{
		{"product", md.Product}, {"version", md.Version}, {"tag", md.Tag}, {"build", md.Build},
		{"revision", md.Revision}, {"commit", md.Commit}, {"rpms", rpms}, {"log", md.Log},
	} {
		if f[1] == "" {
			continue
		}
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return err
		}
	}
	return nil
}

// bodyLength computes the exact length of the body writeBody produces for a
// file of size bytes, by writing everything but the file to a counter.
func bodyLength(boundary string, md Metadata, size int64) (int64, error) {
	var c countWriter
	mw := multipart.NewWriter(&c)
	if err := mw.SetBoundary(boundary); err != nil {
		return 0, err
	}
	if err := writeFields(mw, md); err != nil {
		return 0, err
	}
	if _, err := mw.CreateFormFile("file", "release.tgz"); err != nil {
		return 0, err
	}
	if err := mw.WriteField("sha256", strings.Repeat("0", 64)); err != nil {
		return 0, err
	}
	if err := mw.Close(); err != nil {
		return 0, err
	}
	return int64(c) + size, nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// writeBody writes the fields, the file part and then its sha256 field.
func writeBody(mw *multipart.Writer, md Metadata, r io.Reader, size int64, progress func(int64, int64)) (string, int64, error) {
	if err := writeFields(mw, md); err != nil {
		return "", 0, err
	}
	part, err := mw.CreateFormFile("file", "release.tgz")
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	pw := &progressWriter{w: part, h: h, total: size, progress: progress}
	// Hide r's WriteTo (os.File has one), which would ignore the buffer.
	n, err := io.CopyBuffer(pw, struct{ io.Reader }{r}, make([]byte, 256<<10))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return "", n, we.err // the connection's error; the request reports it
		}
		return "", n, fmt.Errorf("release: reading the file: %w", err)
	}
	if size >= 0 && n != size {
		return "", n, fmt.Errorf("release: the file changed size while being sent: %d bytes, expected %d", n, size)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := mw.WriteField("sha256", sum); err != nil {
		return "", n, err
	}
	return sum, n, nil
}

// progressWriter hashes what it forwards and reports progress.
type progressWriter struct {
	w        io.Writer
	h        hash.Hash
	n, total int64
	progress func(int64, int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.h.Write(b)
	n, err := p.w.Write(b)
	p.n += int64(n)
	if err != nil {
		return n, &writeError{err}
	}
	if p.progress != nil {
		p.progress(p.n, p.total)
	}
	return n, nil
}

// readReply turns the receiver's response into a Receipt or a typed error.
func readReply(resp *http.Response) (Receipt, error) {
	var body struct {
		Receipt
		Error  string   `json:"error"`
		Fields []string `json:"fields"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	jerr := json.Unmarshal(data, &body)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
		if jerr != nil {
			return Receipt{}, &StatusError{Code: resp.StatusCode, Message: "reply is not JSON", Method: resp.Request.Method, URL: redactURL(resp.Request.URL.String())}
		}
		body.Receipt.Created = resp.StatusCode == http.StatusCreated
		return body.Receipt, nil
	case http.StatusBadRequest:
		if len(body.Fields) > 0 {
			return Receipt{}, &FieldError{Fields: body.Fields, Reason: strings.TrimPrefix(body.Error, "release: ")}
		}
	case http.StatusUnauthorized:
		return Receipt{}, ErrUnauthorized
	case http.StatusConflict:
		return Receipt{}, ErrConflict
	case http.StatusRequestEntityTooLarge:
		return Receipt{}, ErrTooLarge
	case http.StatusUnprocessableEntity:
		return Receipt{}, ErrChecksumMismatch
	}
	msg := body.Error
	if jerr != nil {
		msg = ""
	}
	return Receipt{}, &StatusError{Code: resp.StatusCode, Message: msg, Method: resp.Request.Method, URL: redactURL(resp.Request.URL.String())}
}
