package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/s3store/s3storetest"
)

// TestServerS3TwoServers runs two servers on one bucket (credentials from a
// file for one, from the environment for the other): a release uploaded to
// one is served by both, stored once, and its hook ran on the server that
// stored it only.
func TestServerS3TwoServers(t *testing.T) {
	gw := s3storetest.NewGateway(t)
	t.Setenv("RELEASE_SECRET", "s")
	t.Setenv("AWS_ACCESS_KEY_ID", gw.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", gw.SecretKey)
	creds := writeFile(t, "creds", "AWS_ACCESS_KEY_ID="+gw.AccessKey+"\nAWS_SECRET_ACCESS_KEY="+gw.SecretKey+"\n", 0o600)
	var bases, markers []string
	for i, id := range []string{"eu", "us"} {
		marker := filepath.Join(t.TempDir(), "hook-ran")
		hook := writeFile(t, "hook.sh", "#!/bin/sh\n. \"$1\"\necho \"$VERSION $(cat \"$2\")\" >> "+marker+"\n", 0o755)
		args := []string{"-dir", t.TempDir(), "-hook", hook, "-s3-endpoint", "http://" + gw.Endpoint, "-bucket", gw.Bucket, "-server-id", id}
		if i == 0 {
			args = append(args, "-s3-credentials-file", creds)
		}
		base, _ := startServer(t, args...)
		bases = append(bases, base)
		markers = append(markers, marker)
	}
	rcpt, err := (&release.Uploader{URL: bases[0] + "/release", Secret: "s"}).Upload(t.Context(),
		release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("tarball"), 7)
	require.NoError(t, err)
	assert.True(t, rcpt.Created)
	rcpt, err = (&release.Uploader{URL: bases[1] + "/release", Secret: "s"}).Upload(t.Context(),
		release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("tarball"), 7)
	require.NoError(t, err)
	assert.False(t, rcpt.Created, "the other server finds it stored: 200")
	assert.Equal(t, "1.0.0 tarball\n", readFile(t, markers[0]))
	assert.NoFileExists(t, markers[1], "the hook ran on the server that stored the release only")
	for _, base := range bases {
		resp, err := http.Get(base + "/releases/app/1.0.0/release.tgz")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "tarball", string(body))
		assert.NotEmpty(t, resp.Header.Get("Repr-Digest"))
	}
	entries, err := os.ReadDir(filepath.Join(gw.Dir, gw.Bucket, "app", "1.0.0"))
	require.NoError(t, err)
	assert.NotEmpty(t, entries, "the release is in the bucket")
}

func TestRunS3Flags(t *testing.T) {
	t.Setenv("RELEASE_SECRET", "s")
	var out, errb strings.Builder
	for _, args := range [][]string{
		{"-dir", t.TempDir(), "-s3-endpoint", "http://127.0.0.1:1"},
		{"-dir", t.TempDir(), "-bucket", "b"},
	} {
		assert.ErrorIs(t, run(t.Context(), args, &out, &errb), errUsage, "run(%q)", args)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	err := run(t.Context(), []string{"-dir", t.TempDir(), "-s3-endpoint", "http://127.0.0.1:1", "-bucket", "b"}, &out, &errb)
	assert.ErrorContains(t, err, "no S3 credentials")
	err = run(t.Context(), []string{"-dir", t.TempDir(), "-s3-endpoint", "127.0.0.1:1", "-bucket", "b"}, &out, &errb)
	assert.ErrorContains(t, err, "want http://host:port")
}

// The server offers resumable uploads at /release/uploads/.
func TestServerResumableUpload(t *testing.T) {
	t.Setenv("RELEASE_SECRET", "s")
	dir := t.TempDir()
	base, _ := startServer(t, "-dir", dir)
	path := writeFile(t, "release.tgz", "resumable tarball", 0o644)
	rcpt, err := (&release.Uploader{URL: base + "/release", Secret: "s"}).UploadFileResumable(t.Context(),
		release.Metadata{Product: "app", Version: "1.0.0"}, path, path+".upload")
	require.NoError(t, err)
	assert.True(t, rcpt.Created)
	assert.Equal(t, "resumable tarball", readFile(t, filepath.Join(dir, "app/1.0.0/release.tgz")))
}
