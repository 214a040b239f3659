package agent_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet/agent"
)

// TestAPIErrorNamesTheRequest: an error answer says which agent and which
// call failed ("POST /v1/packages/app"), not only the agent's message, and
// shows neither the URL's credentials nor query values (program arguments
// may be secrets).
func TestAPIErrorNamesTheRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"error":"agent: package app is busy","code":"busy"}`)
	}))
	t.Cleanup(srv.Close)
	base := strings.Replace(srv.URL, "http://", "http://ops:pa55word@", 1)
	c, err := agent.NewClient(base, agent.ClientConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	_, err = c.Install(t.Context(), "app", strings.NewReader("zip"), 3,
		agent.Manifest{Binary: "bin/app", Args: []string{"-password", "hunter2"}}, agent.InstallOptions{})
	var ae *agent.APIError
	require.True(t, errors.As(err, &ae), "Install error = %v; want *agent.APIError", err)
	assert.Equal(t, http.MethodPost, ae.Method)
	assert.Contains(t, err.Error(), "agent: "+srv.URL+": POST /v1/packages/app?arg=REDACTED&arg=REDACTED&binary=REDACTED: 409 Conflict: package app is busy")
	assert.Contains(t, err.Error(), "409")
	assert.Contains(t, err.Error(), "package app is busy")
	for _, secret := range []string{"pa55word", "hunter2", "ops:"} {
		assert.NotContains(t, err.Error(), secret)
	}

	// A unix-socket client names the socket.
	sock := filepath.Join(t.TempDir(), "agent.sock")
	uc := agent.NewUnixClient(sock, agent.ClientConfig{})
	t.Cleanup(func() { uc.Close() })
	_, err = uc.Stats(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "GET /v1/stats")
	assert.Contains(t, err.Error(), sock)
}
