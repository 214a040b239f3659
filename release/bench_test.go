package release_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opskit/opskit/release"
)

// BenchmarkUploadLoopback measures the whole path: Uploader → HTTP over
// loopback → Receiver → fsynced file in a temporary directory.
func BenchmarkUploadLoopback(b *testing.B) {
	const size = 64 << 20
	rc, _ := newReceiver(b, release.ReceiverConfig{})
	srv := httptest.NewServer(rc)
	b.Cleanup(srv.Close)
	up := &release.Uploader{URL: srv.URL, Secret: testSecret}
	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		md := release.Metadata{Product: "bench", Version: fmt.Sprintf("1.0.%d", i)}
		if _, err := up.Upload(b.Context(), md, io.LimitReader(newNoise(), size), size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiver measures the receiver alone: an in-memory multipart
// body is parsed, hashed and written to a temporary directory with fsync.
func BenchmarkReceiver(b *testing.B) {
	const size = 128 << 20
	rc, _ := newReceiver(b, release.ReceiverConfig{})
	h := sha256.New()
	io.Copy(h, io.LimitReader(newNoise(), size))
	sum := hex.EncodeToString(h.Sum(nil))
	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		var head bytes.Buffer
		mw := multipart.NewWriter(&head)
		mw.WriteField("product", "bench")
		mw.WriteField("version", fmt.Sprintf("1.0.%d", i))
		mw.CreateFormFile("file", "release.tgz")
		var tail bytes.Buffer
		mw2 := multipart.NewWriter(&tail)
		mw2.SetBoundary(mw.Boundary())
		fmt.Fprintf(&tail, "\r\n")
		mw2.WriteField("sha256", sum)
		mw2.Close()
		// mw2's first boundary line lacks the CRLF that ends the file part;
		// it was written above.
		body := io.MultiReader(&head, io.LimitReader(newNoise(), size), &tail)
		req := httptest.NewRequest(http.MethodPost, "/release", body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+testSecret)
		req.Header.Set("Release-Checksum", "sha256") // as Uploader sends it
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// noise repeats 64 KiB of random bytes: like a compressed tarball, unlike
// zeros, it has CR bytes scattered through it, which the multipart
// boundary scan meets.
type noise struct {
	buf []byte
	off int
}

func newNoise() *noise {
	buf := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	return &noise{buf: buf}
}

func (n *noise) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		c := copy(p, n.buf[n.off:])
		n.off = (n.off + c) % len(n.buf)
		p = p[c:]
		total += c
	}
	return total, nil
}
