package release_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/releasetest"
)

func Example() {
	srv, err := releasetest.New("example-secret")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx := context.Background()

	up := &release.Uploader{URL: srv.UploadURL(), Secret: "example-secret"}
	md := release.Metadata{Product: "app", Version: "1.0.0", Log: "first release"}
	rcpt, err := up.Upload(ctx, md, strings.NewReader("tarball"), 7)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stored:", rcpt.Product, rcpt.Version, rcpt.Size, "bytes, created:", rcpt.Created)

	srv.SetTamper(true)
	_, err = up.Upload(ctx, release.Metadata{Product: "app", Version: "1.0.1"}, strings.NewReader("tarball"), 7)
	fmt.Println("tampered upload rejected:", errors.Is(err, release.ErrChecksumMismatch))

	dst := filepath.Join(os.TempDir(), "opskit-release-example.tgz")
	defer os.Remove(dst)
	for range 2 {
		res, err := release.Fetch(ctx, srv.FileURL("app", "1.0.0"), dst, rcpt.SHA256)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("fetch skipped:", res.Skipped)
	}
	// Output:
	// stored: app 1.0.0 7 bytes, created: true
	// tampered upload rejected: true
	// fetch skipped: false
	// fetch skipped: true
}

func ExampleReceiver() {
	dir, err := os.MkdirTemp("", "releases-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	rc, err := release.NewReceiver(release.ReceiverConfig{
		Dir:     dir,
		Secrets: []release.Secret{"old-secret", "new-secret"}, // rotation: both accepted
		MaxSize: 1 << 30,
		Hook: func(ctx context.Context, r release.Release) error {
			fmt.Println("hook:", r.Product, r.Version, filepath.Base(r.Tarball), filepath.Base(r.EnvFile))
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("POST /release", rc)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	up := &release.Uploader{URL: srv.URL + "/release", Secret: "old-secret"}
	rcpt, err := up.Upload(context.Background(), release.Metadata{Product: "app", Version: "2.0.0"}, strings.NewReader("tgz"), 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("created:", rcpt.Created)
	// Output:
	// hook: app 2.0.0 release.tgz release.env
	// created: true
}

func ExampleValidName() {
	for _, s := range []string{"app", "1.4.2-rc1", "../etc", "-rf", "a/b"} {
		fmt.Println(s, release.ValidName(s))
	}
	// Output:
	// app true
	// 1.4.2-rc1 true
	// ../etc false
	// -rf false
	// a/b false
}
