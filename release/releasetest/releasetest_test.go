package releasetest_test

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/releasetest"
)

func TestServer(t *testing.T) {
	srv := releasetest.NewServer(t)
	up := srv.Uploader()
	md := release.Metadata{Product: "app", Version: "1.0.0"}

	rcpt, err := up.Upload(t.Context(), md, strings.NewReader("payload"), 7)
	require.NoError(t, err)
	require.Len(t, srv.Releases(), 1)
	assert.Equal(t, md, srv.Releases()[0].Metadata)

	resp, err := http.Get(srv.FileURL("app", "1.0.0"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "payload", string(body), "FileURL serves the stored tarball")

	srv.SetTamper(true)
	_, err = up.Upload(t.Context(), release.Metadata{Product: "app", Version: "1.0.1"}, strings.NewReader("payload"), 7)
	assert.ErrorIs(t, err, release.ErrChecksumMismatch, "SetTamper(true)")
	srv.SetTamper(false)

	srv.SetHookError(errors.New("boom"))
	_, err = up.Upload(t.Context(), release.Metadata{Product: "app", Version: "1.0.2"}, strings.NewReader("payload"), 7)
	var se *release.StatusError
	require.ErrorAs(t, err, &se, "SetHookError")
	assert.Equal(t, 500, se.Code)
	srv.SetHookError(nil)

	again, err := up.Upload(t.Context(), release.Metadata{Product: "app", Version: "1.0.2"}, strings.NewReader("payload"), 7)
	require.NoError(t, err)
	assert.True(t, again.Created)
	assert.Len(t, srv.Releases(), 2)
	assert.Equal(t, rcpt.SHA256, again.SHA256)
}

func TestNewAndClose(t *testing.T) {
	srv, err := releasetest.New("s")
	require.NoError(t, err)
	_, err = srv.Uploader().Upload(t.Context(), release.Metadata{Product: "a", Version: "1"}, strings.NewReader("x"), 1)
	require.NoError(t, err)
	srv.Close()
	_, err = os.Stat(srv.Dir)
	assert.ErrorIs(t, err, os.ErrNotExist, "Close removes the directory")
}
