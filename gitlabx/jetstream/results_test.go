package jetstream_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/gitlabx/jetstream"
)

// TestResultsShared: a result one replica stores is read by another
// through the same bucket, replaced in place, and an unknown key is
// reported as absent, not as an error.
func TestResultsShared(t *testing.T) {
	srv := natsServer(t)
	a, err := jetstream.NewResults(t.Context(), jetstream.ResultsConfig{Conn: connect(t, srv.ClientURL()), Bucket: "RESULTS"})
	require.NoError(t, err)
	b, err := jetstream.NewResults(t.Context(), jetstream.ResultsConfig{Conn: connect(t, srv.ClientURL()), Bucket: "RESULTS"})
	require.NoError(t, err)

	require.NoError(t, a.Put(t.Context(), "0f3a", []byte(`{"status":"queued"}`)))
	require.NoError(t, a.Put(t.Context(), "0f3a", []byte(`{"status":"done"}`)))
	v, ok, err := b.Get(t.Context(), "0f3a")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, `{"status":"done"}`, string(v), "the other replica reads the latest result")

	for _, key := range []string{"unknown", "not a key!"} {
		v, ok, err = b.Get(t.Context(), key)
		assert.NoError(t, err, "Get(%q)", key)
		assert.False(t, ok, "Get(%q) = %q", key, v)
	}
	_, err = jetstream.NewResults(t.Context(), jetstream.ResultsConfig{})
	assert.True(t, errors.Is(err, jetstream.ErrConfig), "NewResults without a connection: %v", err)
}
