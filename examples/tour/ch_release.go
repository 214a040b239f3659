package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/releasetest"
)

// releaseChapter is the tour's release chapter.
func releaseChapter() chapter {
	return chapter{
		name:    "release",
		summary: "stream a release to the release API, reject a tampered one, skip a fetch",
		run:     runRelease,
	}
}

func runRelease(ctx context.Context, n *narrator) error {
	srv, err := releasetest.New("tour-secret")
	if err != nil {
		return err
	}
	defer srv.Close()
	n.Say("A release API (release.Receiver) listens on loopback; the build server holds its secret.")

	tarball := bytes.Repeat([]byte("opskit release tarball\n"), 100_000) // 2.3 MB
	up := &release.Uploader{URL: srv.UploadURL(), Secret: "tour-secret"}
	calls, lastPct := 0, int64(0)
	up.Progress = func(_ release.Metadata, sent, total int64) { calls++; lastPct = sent * 100 / total }
	md := release.Metadata{Product: "app", Version: "1.0.0", Tag: "v1.0.0", Log: "fix: it's $(not) run `ever`"}
	rcpt, err := up.Upload(ctx, md, bytes.NewReader(tarball), int64(len(tarball)))
	if err != nil {
		return err
	}
	n.Say("Uploaded app 1.0.0: %d bytes streamed; the progress callback ran %d times, up to %d%%.", rcpt.Size, calls, lastPct)
	n.Say("The receiver confirmed sha256 %s… and answered 201 Created.", rcpt.SHA256[:16])
	rels := srv.Releases()
	if len(rels) != 1 {
		return fmt.Errorf("hook saw %d releases, want 1", len(rels))
	}
	env, err := os.ReadFile(rels[0].EnvFile)
	if err != nil {
		return err
	}
	n.Say("Stored as app/1.0.0/%s and %s; the hook ran once.", filepath.Base(rels[0].Tarball), filepath.Base(rels[0].EnvFile))
	n.Say("release.env quotes the changelog for the shell: %s", lineOf(env, "LOG="))

	again, err := up.Upload(ctx, md, bytes.NewReader(tarball), int64(len(tarball)))
	if err != nil {
		return err
	}
	if again.Created || len(srv.Releases()) != 1 {
		return fmt.Errorf("re-upload: created=%v, hook runs %d; want false, 1", again.Created, len(srv.Releases()))
	}
	n.Say("Uploading the same release again: 200 OK, already stored, and the hook did not run again.")

	srv.SetTamper(true)
	_, err = up.Upload(ctx, release.Metadata{Product: "app", Version: "1.0.1"}, bytes.NewReader(tarball), int64(len(tarball)))
	if !errors.Is(err, release.ErrChecksumMismatch) {
		return fmt.Errorf("tampered upload: got %v, want ErrChecksumMismatch", err)
	}
	srv.SetTamper(false)
	if _, err := os.Stat(filepath.Join(srv.Dir, "app", "1.0.1")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tampered release app 1.0.1 was stored")
	}
	n.Say("A byte flipped in transit on app 1.0.1: %v (422); nothing was stored.", err)

	_, err = (&release.Uploader{URL: srv.UploadURL(), Secret: "guess"}).Upload(ctx, md, bytes.NewReader(tarball), int64(len(tarball)))
	if !errors.Is(err, release.ErrUnauthorized) {
		return fmt.Errorf("wrong secret: got %v, want ErrUnauthorized", err)
	}
	n.Say("A wrong secret: %v (401).", err)

	work, err := os.MkdirTemp("", "opskit-tour-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dst := filepath.Join(work, "app.tgz")
	for range 2 {
		res, err := release.Fetch(ctx, srv.FileURL("app", "1.0.0"), dst, rcpt.SHA256)
		if err != nil {
			return err
		}
		if res.Skipped {
			n.Say("Fetch again: app.tgz already has that checksum, so the download was skipped.")
		} else {
			n.Say("Fetch on the update target: downloaded app.tgz (%d bytes) and verified its checksum.", res.Size)
		}
	}
	return nil
}

func lineOf(b []byte, prefix string) string {
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(l, []byte(prefix)) {
			return string(l)
		}
	}
	return ""
}
