package gitlabx_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/internal/fixtures"
)

// FuzzHooksPayload feeds arbitrary bodies and event headers to the receiver:
// it must never panic, must answer one of its documented statuses, must
// refuse what is not JSON with 400, and must hand handlers only events
// client-go parsed.
func FuzzHooksPayload(f *testing.F) {
	for name, event := range fixtures.GitLabEvents() {
		b, err := fixtures.GitLabWebhook(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(event, b)
		f.Add(event, b[:len(b)/3])
	}
	f.Add("Note Hook", []byte(`{"object_kind":"note","object_attributes":{"noteable_type":"Snippet"}}`))
	f.Add("Merge Request Hook", []byte(`{"object_attributes":{"iid":-1,"action":"merge"},"user":null}`))
	f.Add("Issue Hook", []byte(`null`))
	f.Add("Push Hook", []byte(`[]`))

	h, err := gitlabx.NewHooks(gitlabx.HooksConfig{Token: hookToken, QueueSize: 1 << 20, DedupSize: 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Shutdown(context.Background()) })
	check := func(ev any) error {
		if ev == nil {
			panic("nil event")
		}
		return nil
	}
	h.OnMergeRequest(func(_ context.Context, e *gitlab.MergeEvent) error { return check(e) })
	h.OnIssue(func(_ context.Context, e *gitlab.IssueEvent) error { return check(e) })
	h.OnNote(func(_ context.Context, e gitlabx.NoteEvent) error {
		if e.MergeRequest == nil && e.Issue == nil && e.Commit == nil && e.Snippet == nil {
			panic("empty NoteEvent")
		}
		return nil
	})
	h.OnPush(func(_ context.Context, e *gitlab.PushEvent) error { return check(e) })
	h.OnTagPush(func(_ context.Context, e *gitlab.TagEvent) error { return check(e) })
	h.OnPipeline(func(_ context.Context, e *gitlab.PipelineEvent) error { return check(e) })

	f.Fuzz(func(t *testing.T, event string, body []byte) {
		resp := deliver(h, event, body, "Idempotency-Key", "")
		switch resp.StatusCode {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest:
		default:
			t.Fatalf("POST %q with %d bytes: status %d", event, len(body), resp.StatusCode)
		}
		if !json.Valid(body) && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("POST %q with invalid JSON %q: status %d; want 400", event, body, resp.StatusCode)
		}
	})
}
