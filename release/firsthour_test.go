package release_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
)

// badMetadata breaks the receiver's rules one field at a time; rule is what
// the error must say about it.
var badMetadata = []struct {
	name  string
	md    release.Metadata
	field string
	rule  string
}{
	{"product climbs out", release.Metadata{Product: "../etc", Version: "1.0.0"}, "product", `product "../etc" must start with a letter or digit`},
	{"product with a slash", release.Metadata{Product: "app/x", Version: "1.0.0"}, "product", `product "app/x" has '/' at index 3`},
	{"product with dot-dot", release.Metadata{Product: "app..x", Version: "1.0.0"}, "product", `product "app..x" contains ".."`},
	{"product too long", release.Metadata{Product: strings.Repeat("a", 129), Version: "1.0.0"}, "product", "is 129 bytes, at most 128"},
	{"version missing", release.Metadata{Product: "app"}, "version", "version is required"},
	{"version with a space", release.Metadata{Product: "app", Version: "1.0 beta"}, "version", `version "1.0 beta" has ' ' at index 3`},
	{"tag with a newline", release.Metadata{Product: "app", Version: "1.0.0", Tag: "v1\nX=1"}, "tag", "tag has control character U+000A at index 2"},
	{"commit not UTF-8", release.Metadata{Product: "app", Version: "1.0.0", Commit: "ab\xffcd"}, "commit", "commit is not valid UTF-8"},
	{"build too long", release.Metadata{Product: "app", Version: "1.0.0", Build: strings.Repeat("9", 5000)}, "build", "build is 5000 bytes, at most 4096"},
	{"log with NUL", release.Metadata{Product: "app", Version: "1.0.0", Log: "fix\x00"}, "log", "log has NUL at index 3"},
	{"log too long", release.Metadata{Product: "app", Version: "1.0.0", Log: strings.Repeat("x", 1<<20+1)}, "log", "log is 1048577 bytes, at most 1048576"},
}

// untouchable fails the test when the uploader reads the file.
type untouchable struct{ t *testing.T }

func (u untouchable) Read([]byte) (int, error) {
	u.t.Error("Upload read the file of an invalid release")
	return 0, io.EOF
}

// TestUploaderValidatesBeforeConnecting: Product "../etc" is refused before
// a connection is opened or a byte of the file is read (it used to take the
// whole transfer, 4.6 s for 200 MiB), and the *FieldError names the field and
// the rule it broke.
func TestUploaderValidatesBeforeConnecting(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	up := &release.Uploader{URL: srv.URL + "/release", Secret: testSecret}
	for _, tt := range badMetadata {
		t.Run(tt.name, func(t *testing.T) {
			_, err := up.Upload(t.Context(), tt.md, untouchable{t}, 200<<20)
			var fe *release.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, []string{tt.field}, fe.Fields)
			require.Len(t, fe.Rules, 1, "FieldError.Rules")
			assert.Contains(t, err.Error(), tt.rule)
			assert.True(t, strings.HasPrefix(err.Error(), "release: invalid metadata: "), "err = %q", err)
			assert.Less(t, len(err.Error()), 400, "the message quotes a long value only in part")
		})
	}
	t.Run("two fields", func(t *testing.T) {
		_, err := up.Upload(t.Context(), release.Metadata{Product: "../etc", Version: "1.0/x"}, untouchable{t}, 1)
		var fe *release.FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, []string{"product", "version"}, fe.Fields)
		assert.Equal(t, `release: invalid metadata: product "../etc" must start with a letter or digit, not '.'; `+
			`version "1.0/x" has '/' at index 3 (allowed: letters, digits and . _ + ~ -)`, err.Error())
	})
	assert.Zero(t, conns.Load(), "connections opened for invalid releases")
}

// TestMetadataValidateMatchesReceiver keeps the client's check and the
// receiver's rules the same: every release Validate refuses, the receiver
// refuses for the same field, and every release it accepts is stored.
func TestMetadataValidateMatchesReceiver(t *testing.T) {
	rc, _ := newReceiver(t, release.ReceiverConfig{})
	cases := []release.Metadata{
		{Product: "app", Version: "1.0.0"},
		{Product: "A1_b+c~d-e.f", Version: strings.Repeat("9", 128), Tag: "v1 (rc) ü", Build: strings.Repeat("9", 4096),
			Commit: "abc", Revision: "7", Log: "multi\nline\t\"quoted\" $(x)", RPMs: true},
	}
	for _, b := range badMetadata {
		cases = append(cases, b.md)
	}
	for i, md := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			content := fmt.Sprintf("release %d", i)
			parts := []field{f("product", md.Product), f("version", md.Version), f("tag", md.Tag), f("build", md.Build),
				f("revision", md.Revision), f("commit", md.Commit), f("log", md.Log)}
			if md.RPMs {
				parts = append(parts, f("rpms", "1"))
			}
			parts = append(parts, fileField(content), f("sha256", sha256Hex(content)))
			var kept []field
			for _, p := range parts {
				if p.file || p.value != "" {
					kept = append(kept, p)
				}
			}
			body, ct := form(t, kept...)
			r := post(t, rc, body, ct, testSecret)
			verr := md.Validate()
			if verr == nil {
				assert.Equal(t, http.StatusCreated, r.Status, "Validate accepted %q/%q; receiver answered %d %s %v", md.Product, md.Version, r.Status, r.Error, r.Fields)
				return
			}
			var fe *release.FieldError
			require.ErrorAs(t, verr, &fe)
			assert.Equal(t, http.StatusBadRequest, r.Status, "Validate refused (%v); receiver answered %d", verr, r.Status)
			assert.Equal(t, fe.Fields, r.Fields, "fields Validate and the receiver refuse")
		})
	}
}

// TestStatusErrorsNameMethodAndURL: "release: http status 404" named no URL,
// and was what both a missing Fetch target and an Uploader.URL without
// /release produced. The URL is shown without credentials.
func TestStatusErrorsNameMethodAndURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	u.User = url.UserPassword("deploy", "pa55word")
	withCreds := u.String() + "/upload?token=t0ken&x=1"
	host := strings.TrimPrefix(srv.URL, "http://")

	_, err = (&release.Uploader{URL: withCreds, Secret: "s"}).Upload(t.Context(), md, strings.NewReader("x"), 1)
	var se *release.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.MethodPost, se.Method)
	assert.Equal(t, "release: POST http://"+host+"/upload?token=REDACTED&x=REDACTED: http status 404", err.Error())

	_, err = release.Fetch(t.Context(), withCreds, filepath.Join(t.TempDir(), "f"), sha256Hex("x"))
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "release: GET http://"+host+"/upload?token=REDACTED&x=REDACTED: http status 404", err.Error())
	for _, secret := range []string{"pa55word", "t0ken", "deploy"} {
		assert.NotContains(t, err.Error(), secret)
		assert.NotContains(t, se.URL, secret)
	}

	// Transport errors name the URL without credentials too.
	_, err = release.Fetch(t.Context(), "http://deploy:pa55word@127.0.0.1:1/x?token=t0ken", filepath.Join(t.TempDir(), "f"), sha256Hex("x"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "pa55word")
	assert.NotContains(t, err.Error(), "t0ken")
}

// TestFetchBadChecksumSaysWhatIsWrong: "release: invalid checksum: sha256"
// read as if "sha256" were the bad value. (An empty checksum is left out:
// another branch makes it mean "the server's Repr-Digest".)
func TestFetchBadChecksumSaysWhatIsWrong(t *testing.T) {
	good := sha256Hex("x")
	tests := []struct{ sum, want string }{
		{"abc", `release: fetch: invalid argument: sha256 checksum "abc" has length 3, want 64 hex characters`},
		{good + "0", "has length 65, want 64 hex characters"},
		{good[:5] + "g" + good[6:], "has non-hex character 'g' at index 5"},
		{good[:6] + ":" + good[7:], "has non-hex character ':' at index 6"},
	}
	for _, tt := range tests {
		_, err := release.Fetch(t.Context(), "http://127.0.0.1:1/x", filepath.Join(t.TempDir(), "f"), tt.sum)
		var fe *release.FieldError
		require.ErrorAs(t, err, &fe, "Fetch(sha256Hex=%q)", tt.sum)
		assert.Equal(t, []string{"sha256"}, fe.Fields)
		assert.Contains(t, err.Error(), tt.want)
		assert.True(t, strings.HasPrefix(err.Error(), "release: fetch: "), "err = %q", err)
	}
}

// TestUploaderProgressPerUpload: one Uploader shared by concurrent uploads
// (which its doc allows) tells Progress which upload each call reports.
func TestUploaderProgressPerUpload(t *testing.T) {
	rc, _ := newReceiver(t, release.ReceiverConfig{})
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	last := map[string][2]int64{}
	up := &release.Uploader{URL: srv.URL, Secret: testSecret, Progress: func(m release.Metadata, sent, total int64) {
		mu.Lock()
		defer mu.Unlock()
		prev := last[m.Version]
		if sent < prev[0] {
			t.Errorf("progress of %s went backwards: %d after %d", m.Version, sent, prev[0])
		}
		last[m.Version] = [2]int64{sent, total}
	}}
	sizes := map[string]int{"1.0.1": 300 << 10, "1.0.2": 700 << 10, "1.0.3": 1100 << 10, "1.0.4": 1500 << 10}
	var wg sync.WaitGroup
	for v, n := range sizes {
		wg.Go(func() {
			_, err := up.Upload(t.Context(), release.Metadata{Product: "app", Version: v}, io.LimitReader(zeros{}, int64(n)), int64(n))
			assert.NoError(t, err, "upload %s", v)
		})
	}
	wg.Wait()
	for v, n := range sizes {
		assert.Equal(t, int64(n), last[v][0], "last progress of %s: bytes sent", v)
		assert.Equal(t, int64(n), last[v][1], "last progress of %s: total", v)
	}
}
