package s3store_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/internal/promtest"
	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/s3store"
)

// TestMetricsS3 counts uploads to a receiver on the S3 store like those to
// a directory: created, identical, conflict, a failed hook (the release
// removed from the bucket) and the bytes received.
func TestMetricsS3(t *testing.T) {
	addr := startGateway(t)
	st, err := s3store.New(s3store.Config{Client: client(t, addr), Bucket: bucket, ServerID: "metrics"})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	m, err := release.NewMetrics(reg)
	require.NoError(t, err)
	rc, err := release.NewReceiver(release.ReceiverConfig{Dir: t.TempDir(), Store: st, Secrets: []release.Secret{testSecret}, Metrics: m,
		Hook: func(_ context.Context, r release.Release) error {
			if r.Version == "bad" {
				return errors.New("deploy failed")
			}
			return nil
		}})
	require.NoError(t, err)
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)

	count := func(result string) float64 {
		return promtest.Value(t, reg, "opskit_release_uploads_total", promtest.Labels("result", result))
	}
	_, err = upload(t.Context(), srv.URL, "1.0", "first")
	require.NoError(t, err)
	_, err = upload(t.Context(), srv.URL, "1.0", "first")
	require.NoError(t, err)
	_, err = upload(t.Context(), srv.URL, "1.0", "other")
	require.ErrorIs(t, err, release.ErrConflict)
	_, err = upload(t.Context(), srv.URL, "bad", "hooked")
	require.Error(t, err)
	assert.Equal(t, 1.0, count("created"))
	assert.Equal(t, 1.0, count("identical"))
	assert.Equal(t, 1.0, count("conflict"))
	assert.Equal(t, 1.0, count("hook_failed"))
	assert.Equal(t, 0.0, count("error"))
	assert.Equal(t, float64(3*len("first")+len("hooked")), promtest.Value(t, reg, "opskit_release_received_bytes_total", nil))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_hooks_total", promtest.Labels("result", "failed")))
	assert.Equal(t, 1.0, promtest.Value(t, reg, "opskit_release_hooks_total", promtest.Labels("result", "succeeded")))
}
