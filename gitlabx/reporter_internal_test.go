package gitlabx

import (
	"net/http"
	"testing"
	"time"
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
