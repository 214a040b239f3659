package release_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/opskit/opskit/release"
)

// FuzzReceiver sends random multipart bodies. The receiver must never
// panic, must answer one of its documented statuses with a JSON body, and
// must leave no file behind unless it stored a release (201), in which case
// exactly release.tgz and release.env exist.
func FuzzReceiver(fz *testing.F) {
	const boundary = "fuzzboundary"
	seed := func(parts ...field) {
		body, _ := form(fz, parts...)
		// Re-render with a fixed boundary so mutations keep it.
		body = bytes.ReplaceAll(body, []byte(boundaryOf(body)), []byte(boundary))
		fz.Add(body, true)
		fz.Add(body, false)
	}
	seed(goodForm("x")...)
	seed(f("secret", testSecret), f("product", "app"), f("version", "1.0.0"), fileField("abc"), f("log", "it's $(x)"), f("md5", md5Hex("abc")))
	seed(f("product", "../x"), fileField("abc"))
	seed(fileField(""), fileField(""))
	fz.Add([]byte("--"+boundary+"--\r\n"), true)
	fz.Add([]byte{}, true)

	fz.Fuzz(func(t *testing.T, body []byte, bearer bool) {
		dir := t.TempDir()
		rc, err := release.NewReceiver(release.ReceiverConfig{Dir: dir, Secrets: []release.Secret{testSecret}, MaxSize: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/release", bytes.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		if bearer {
			req.Header.Set("Authorization", "Bearer "+testSecret)
		}
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		if !slices.Contains([]int{200, 201, 400, 401, 409, 413, 422}, rec.Code) {
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
		if !bytes.HasPrefix(rec.Body.Bytes(), []byte("{")) {
			t.Fatalf("body is not JSON: %q", rec.Body.String())
		}
		got := files(t, dir)
		if rec.Code == 201 {
			if len(got) != 2 {
				t.Fatalf("201 but files %v", got)
			}
			return
		}
		if len(got) != 0 {
			t.Fatalf("status %d left files %v", rec.Code, got)
		}
	})
}

func boundaryOf(body []byte) string {
	line, _, _ := bytes.Cut(body, []byte("\r\n"))
	return string(bytes.TrimPrefix(line, []byte("--")))
}

// FuzzUploaderReply feeds the Uploader arbitrary replies: it must never
// panic, and must succeed only for a 200/201 that confirms the checksum
// and size it sent.
func FuzzUploaderReply(fz *testing.F) {
	sum := sha256Hex("x")
	fz.Add(201, `{"product":"app","version":"1","sha256":"`+sum+`","size":1}`)
	fz.Add(200, `{"product":"app","version":"1","sha256":"`+sum+`","size":2}`)
	fz.Add(400, `{"error":"release: missing or invalid fields","fields":["product"]}`)
	fz.Add(400, `{"fields":null}`)
	fz.Add(409, `not json`)
	fz.Add(500, ``)
	fz.Add(302, `{}`)
	fz.Fuzz(func(t *testing.T, status int, body string) {
		if status < 200 || status > 599 {
			return
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(status)
			io.WriteString(w, body)
		}))
		defer srv.Close()
		rcpt, err := (&release.Uploader{URL: srv.URL, Secret: "s"}).Upload(t.Context(), release.Metadata{Product: "app", Version: "1"}, strings.NewReader("x"), 1)
		if err == nil && ((status != 200 && status != 201) || rcpt.SHA256 != sum || rcpt.Size != 1) {
			t.Fatalf("status %d body %q accepted as %+v", status, body, rcpt)
		}
	})
}
