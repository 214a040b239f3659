package gitlabx

import (
	"net/http"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

func TestRetryAfter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
		ok     bool
	}{
		{"Retry-After seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second, true},
		{"Retry-After date", http.Header{"Retry-After": {now.Add(9 * time.Second).UTC().Format(http.TimeFormat)}}, 9 * time.Second, true},
		{"RateLimit-Reset", http.Header{"Ratelimit-Reset": {"1800000042"}}, 42 * time.Second, true},
		{"Retry-After wins", http.Header{"Retry-After": {"3"}, "Ratelimit-Reset": {"1800000042"}}, 3 * time.Second, true},
		{"reset in the past", http.Header{"Ratelimit-Reset": {"1700000000"}}, 0, true},
		{"neither", http.Header{}, 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(&http.Response{Header: tt.header}, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: retryAfter = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// TestReporterRequestsPerSecond: requests are spaced by 1/RequestsPerSecond
// (on synctest's clock, so nothing here depends on the machine's speed).
func TestReporterRequestsPerSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &IssueReporter{RequestsPerSecond: 2}
		start := time.Now()
		var at []time.Duration
		for range 5 {
			err := r.send(t.Context(), func([]gitlab.RequestOptionFunc) (*gitlab.Response, error) {
				at = append(at, time.Since(start))
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		want := []time.Duration{0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second}
		if !slices.Equal(at, want) {
			t.Errorf("requests at %v; want %v", at, want)
		}
		if r.calls != 5 {
			t.Errorf("calls = %d; want 5", r.calls)
		}

		r = &IssueReporter{} // no cap
		start = time.Now()
		for range 5 {
			_ = r.send(t.Context(), func([]gitlab.RequestOptionFunc) (*gitlab.Response, error) { return nil, nil })
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("without a cap 5 requests took %v", d)
		}
	})
}
