package freshdesk_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandler(t *testing.T) {
	e := newEnv(t, envOpt{})
	srv := httptest.NewServer(e.b.Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantHeader map[string]string
		wantBody   map[string]any
	}{
		{"no token", "POST", "/escalate/4711", nil, 401,
			map[string]string{"WWW-Authenticate": `Bearer realm="freshdesk-bridge"`}, map[string]any{"error": "missing or wrong bearer token"}},
		{"wrong token", "POST", "/escalate/4711", map[string]string{"Authorization": "Bearer nope"}, 401, nil, nil},
		{"token without Bearer", "POST", "/escalate/4711", map[string]string{"Authorization": "bridge-token"}, 401, nil, nil},
		{"basic auth is not a bearer token", "POST", "/escalate/4711", map[string]string{"Authorization": "Basic YnJpZGdlLXRva2VuOg=="}, 401, nil, nil},
		{"bad ticket id", "POST", "/escalate/abc", map[string]string{"Authorization": "Bearer bridge-token"}, 400, nil, nil},
		{"unknown ticket", "POST", "/escalate/999", map[string]string{"Authorization": "Bearer bridge-token"}, 404, nil, nil},
		{"GET is not allowed", "GET", "/escalate/4711", map[string]string{"Authorization": "Bearer bridge-token"}, 405, nil, nil},
		{"escalates", "POST", "/escalate/4711", map[string]string{"Authorization": "Bearer bridge-token", "Origin": "https://acme.freshdesk.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "https://acme.freshdesk.com", "Content-Type": "application/json"},
			map[string]any{"issue_url": e.gl.URL() + "/acme/exporter/-/work_items/1", "created": true, "notes_added": 3.0, "attachments_copied": 1.0}},
		{"escalates again", "POST", "/escalate/4711", map[string]string{"Authorization": "Bearer bridge-token"}, 200, nil,
			map[string]any{"issue_url": e.gl.URL() + "/acme/exporter/-/work_items/1", "created": false, "notes_added": 0.0, "attachments_copied": 0.0}},
		{"other origin gets no CORS header", "POST", "/escalate/4711", map[string]string{"Authorization": "Bearer bridge-token", "Origin": "https://evil.example"}, 200,
			map[string]string{"Access-Control-Allow-Origin": ""}, nil},
		{"preflight from freshdesk", "OPTIONS", "/escalate/4711", map[string]string{"Origin": "https://acme.freshdesk.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}, 204,
			map[string]string{"Access-Control-Allow-Origin": "https://acme.freshdesk.com", "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Authorization, Content-Type"}, nil},
		{"preflight from another origin", "OPTIONS", "/escalate/4711", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, 403,
			map[string]string{"Access-Control-Allow-Origin": ""}, nil},
		{"preflight without origin", "OPTIONS", "/escalate/4711", map[string]string{"Access-Control-Request-Method": "POST"}, 403, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, nil)
			require.NoError(t, err)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			for k, v := range tt.wantHeader {
				assert.Equal(t, v, resp.Header.Get(k), "header %s", k)
			}
			if tt.wantBody != nil {
				var got map[string]any
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
				assert.Equal(t, tt.wantBody, got)
			}
		})
	}
	assert.Len(t, e.issues(), 1, "only authorised calls escalated")
}
