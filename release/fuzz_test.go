package release_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
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
