package gitlabx_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

const proj = 7

// fakeRepo is a fake GitLab with project 7 ("ops/app"), VERSION 1.2.3 on
// main and a branch "feature" carrying sourceVersion, and MR !1 feature → main.
func fakeRepo(t *testing.T, sourceVersion string) (*gitlabtest.Server, gitlabtest.MergeRequest) {
	t.Helper()
	srv := gitlabtest.NewServer(t)
	srv.AddProject(gitlabtest.Project{ID: proj, Path: "ops/app"})
	srv.SetFile(proj, "main", "VERSION", []byte("1.2.3\n"))
	srv.SetFile(proj, "feature", "VERSION", []byte(sourceVersion+"\n"))
	mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{Title: "Fix login", SourceBranch: "feature", TargetBranch: "main", AuthorID: 42})
	return srv, mr
}

func mrRef(mr gitlabtest.MergeRequest) gitlabx.MergeRequestRef {
	return gitlabx.MergeRequestRef{Project: proj, IID: mr.IID, SourceBranch: mr.SourceBranch, TargetBranch: mr.TargetBranch}
}

func versionNotes(srv *gitlabtest.Server, iid int64) []gitlabtest.Note {
	var out []gitlabtest.Note
	for _, n := range srv.Notes(proj, gitlabtest.MergeRequestNoteable, iid) {
		if strings.Contains(n.Body, "<!-- opskit:version-check=") {
			out = append(out, n)
		}
	}
	return out
}

func newCheck(t *testing.T, srv *gitlabtest.Server, cfg gitlabx.VersionCheckConfig) *gitlabx.VersionCheck {
	t.Helper()
	v, err := gitlabx.NewVersionCheck(srv.Client(), cfg)
	require.NoError(t, err)
	return v
}

func TestVersionCheckNote(t *testing.T) {
	tests := []struct {
		name     string
		source   string
		wantNote gitlabx.NoteAction
		wantText string
	}{
		{"mismatch warns", "1.2.4", gitlabx.NoteCreated, "**Version mismatch** in `VERSION`: source branch `feature` has `1.2.4`, target branch `main` has `1.2.3`."},
		{"match stays silent", "1.2.3", gitlabx.NoteNone, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, mr := fakeRepo(t, tt.source)
			v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
			res, err := v.Check(t.Context(), mrRef(mr))
			require.NoError(t, err)
			assert.Equal(t, tt.wantNote, res.Note)
			notes := versionNotes(srv, mr.IID)
			if tt.wantText == "" {
				assert.Empty(t, notes, "notes on !1")
				return
			}
			require.Len(t, notes, 1, "notes on !1")
			assert.Contains(t, notes[0].Body, tt.wantText)
		})
	}
}

func TestVersionCheckEditsOneNoteInPlace(t *testing.T) {
	srv, mr := fakeRepo(t, "1.2.4")
	v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
	steps := []struct {
		source   string
		want     gitlabx.NoteAction
		wantText string
	}{
		{"1.2.4", gitlabx.NoteCreated, "`feature` has `1.2.4`"},
		{"1.2.4", gitlabx.NoteUnchanged, "`feature` has `1.2.4`"}, // redelivery or re-run
		{"1.2.5", gitlabx.NoteUpdated, "`feature` has `1.2.5`"},
		{"1.2.3", gitlabx.NoteUpdated, "**Versions match**"},
		{"1.2.3", gitlabx.NoteUnchanged, "**Versions match**"},
	}
	var id int64
	for i, st := range steps {
		srv.SetFile(proj, "feature", "VERSION", []byte(st.source+"\n"))
		res, err := v.Check(t.Context(), mrRef(mr))
		require.NoError(t, err, "step %d", i)
		assert.Equal(t, st.want, res.Note, "step %d (source %s)", i, st.source)
		notes := versionNotes(srv, mr.IID)
		require.Len(t, notes, 1, "step %d: version notes on !1", i)
		assert.Contains(t, notes[0].Body, st.wantText, "step %d", i)
		if id == 0 {
			id = notes[0].ID
		}
		assert.Equal(t, id, notes[0].ID, "step %d: the same note is edited", i)
	}
}

func TestVersionSources(t *testing.T) {
	goRe := regexp.MustCompile(`const Version = "([^"]+)"`)
	tests := []struct {
		name           string
		source         gitlabx.VersionSource
		path           string
		main, feature  string
		wantWarn       bool
		wantInNoteText string // wantWarn: the versions differ or one could not be read
	}{
		{"VERSION file", gitlabx.VersionFile(""), "VERSION", "1.0.0\n", "1.0.1\n", true, "`1.0.1`"},
		{"regexp over Go file", gitlabx.VersionRegexp("version.go", goRe), "version.go",
			"package app\n\nconst Version = \"2.0.0\"\n", "package app\n\nconst Version = \"2.1.0\"\n", true, "`2.1.0`"},
		{"package.json", gitlabx.PackageJSON(""), "package.json",
			`{"name":"app","version":"3.0.0"}`, `{"name":"app","version":"3.0.0","private":true}`, false, "`3.0.0`"},
		{"regexp without match", gitlabx.VersionRegexp("version.go", goRe), "version.go",
			"const Version = \"2.0.0\"", "package app // no version here", true, "could not run"},
		{"package.json not JSON", gitlabx.PackageJSON(""), "package.json", `{"version":"1.0.0"}`, `{"version":`, true, "could not run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := gitlabtest.NewServer(t)
			srv.AddProject(gitlabtest.Project{ID: proj, Path: "ops/app"})
			srv.SetFile(proj, "main", tt.path, []byte(tt.main))
			srv.SetFile(proj, "feature", tt.path, []byte(tt.feature))
			mr := srv.AddMergeRequest(proj, gitlabtest.MergeRequest{SourceBranch: "feature", TargetBranch: "main"})
			// A note exists either way so the text can be checked.
			v := newCheck(t, srv, gitlabx.VersionCheckConfig{Source: tt.source, Policy: func(vs gitlabx.Versions) gitlabx.Verdict {
				d := gitlabx.WarnWhenDifferent(vs)
				d.Warn = true // write a note either way, so its text can be checked
				return d
			}})
			res, err := v.Check(t.Context(), mrRef(mr))
			require.NoError(t, err)
			assert.Equal(t, tt.wantWarn, res.Versions.Source != res.Versions.Target, "versions differ or could not be read: %+v", res.Versions)
			notes := versionNotes(srv, mr.IID)
			require.Len(t, notes, 1)
			assert.Contains(t, notes[0].Body, tt.wantInNoteText)
		})
	}
}

func TestVersionCheckMissingFileOrBranch(t *testing.T) {
	tests := []struct {
		name     string
		break_   func(srv *gitlabtest.Server)
		wantText string
	}{
		{"source branch deleted", func(srv *gitlabtest.Server) { srv.DeleteBranch(proj, "feature") }, "no version in `VERSION` on source branch `feature`"},
		{"file missing on target", func(srv *gitlabtest.Server) { srv.DeleteFile(proj, "main", "VERSION") }, "no version in `VERSION` on target branch `main`"},
		{"empty file", func(srv *gitlabtest.Server) { srv.SetFile(proj, "feature", "VERSION", []byte("\n")) }, "source branch `feature`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, mr := fakeRepo(t, "1.2.4")
			tt.break_(srv)
			v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
			res, err := v.Check(t.Context(), mrRef(mr))
			require.NoError(t, err, "a missing version is a note, not an error")
			assert.True(t, res.Verdict.Warn)
			notes := versionNotes(srv, mr.IID)
			require.Len(t, notes, 1)
			assert.Contains(t, notes[0].Body, "Version check could not run")
			assert.Contains(t, notes[0].Body, tt.wantText)
		})
	}
}

// TestVersionCheckNoDuplicateWhenCreateFailsAfterStoring has GitLab store
// the note and then answer an error (a proxy timing out after the commit):
// the retry must find the note, not post a second one. The control case
// shows that client-go's own retry of the same POST does duplicate it.
func TestVersionCheckNoDuplicateWhenCreateFailsAfterStoring(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv, mr := fakeRepo(t, "1.2.4")
			var mu sync.Mutex
			fired := 0
			srv.FailAfterApplyWhen(func(r *http.Request) (int, bool) {
				mu.Lock()
				defer mu.Unlock()
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/notes") && fired == 0 {
					fired++
					return status, true
				}
				return 0, false
			})
			h := newHooks(t, gitlabx.HooksConfig{RetryBackoff: time.Millisecond})
			v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
			v.Register(h)
			body, err := srv.MergeRequestEvent(proj, mr.IID, gitlabtest.EventOptions{Action: "open"})
			require.NoError(t, err)
			require.Equal(t, http.StatusAccepted, deliver(h, gitlabtest.MergeRequestHook, body).StatusCode)
			require.NoError(t, h.Shutdown(t.Context()))
			require.Equal(t, 1, fired, "the injected failure happened")
			assert.Len(t, versionNotes(srv, mr.IID), 1, "version notes after a failed-but-stored create")
			assert.Equal(t, int64(0), h.Stats().Failed, "the delivery succeeded on retry")
		})
	}
	t.Run("control: a plain client-go POST duplicates", func(t *testing.T) {
		srv, mr := fakeRepo(t, "1.2.4")
		srv.FailNextAfterApply(1, http.StatusBadGateway)
		_, _, err := srv.Client().Notes.CreateMergeRequestNote(proj, mr.IID, &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr("hi")})
		require.NoError(t, err)
		assert.Len(t, srv.Notes(proj, gitlabtest.MergeRequestNoteable, mr.IID), 2, "notes after client-go retried the POST")
	})
}

func TestVersionCheckRecoversFromOutage(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv, mr := fakeRepo(t, "1.2.4")
			srv.SetRetryAfter(0)
			h := newHooks(t, gitlabx.HooksConfig{RetryBackoff: time.Millisecond})
			v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
			v.Register(h)
			body, err := srv.MergeRequestEvent(proj, mr.IID, gitlabtest.EventOptions{Action: "open"})
			require.NoError(t, err)
			// Longer than client-go's own five retries: the delivery is retried.
			srv.FailNext(8, status)
			require.Equal(t, http.StatusAccepted, deliver(h, gitlabtest.MergeRequestHook, body).StatusCode)
			require.NoError(t, h.Shutdown(t.Context()))
			assert.Len(t, versionNotes(srv, mr.IID), 1, "version notes after the outage")
		})
	}
}

func TestVersionCheckThroughHooks(t *testing.T) {
	srv, mr := fakeRepo(t, "1.2.4")
	h := newHooks(t, gitlabx.HooksConfig{BotUserID: srv.BotUser().ID})
	v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
	v.Register(h)

	open, err := srv.MergeRequestEvent(proj, mr.IID, gitlabtest.EventOptions{Action: "open"})
	require.NoError(t, err)
	update, err := srv.MergeRequestEvent(proj, mr.IID, gitlabtest.EventOptions{Action: "update", OldRev: "0123abc"})
	require.NoError(t, err)
	labels, err := srv.MergeRequestEvent(proj, mr.IID, gitlabtest.EventOptions{Action: "update"})
	require.NoError(t, err)

	// Out of order (update before open), redelivered, and concurrent.
	var wg sync.WaitGroup
	for i, d := range []struct {
		body []byte
		key  string
	}{{update, "u1"}, {open, "o1"}, {open, "o1"}, {update, "u1"}, {open, "o2"}, {labels, "l1"}} {
		wg.Go(func() {
			resp := deliver(h, gitlabtest.MergeRequestHook, d.body, "Idempotency-Key", d.key, "X-Gitlab-Event-UUID", "event-"+d.key)
			assert.Less(t, resp.StatusCode, 300, "delivery %d", i)
		})
	}
	wg.Wait()
	require.NoError(t, h.Shutdown(t.Context()))
	notes := versionNotes(srv, mr.IID)
	require.Len(t, notes, 1, "version notes on !1")
	assert.Contains(t, notes[0].Body, "`feature` has `1.2.4`")
	for _, r := range srv.Requests() {
		assert.True(t, strings.HasPrefix(r.Header.Get("X-Gitlab-Event-UUID"), "event-"), "%s %s carries X-Gitlab-Event-UUID", r.Method, r.Path)
	}
}

func TestVersionCheckConcurrentCallsKeepOneNote(t *testing.T) {
	srv, mr := fakeRepo(t, "1.2.4")
	v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := v.Check(t.Context(), mrRef(mr))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Len(t, versionNotes(srv, mr.IID), 1)
}

func TestVersionCheckIgnoresOtherEvents(t *testing.T) {
	srv, mr := fakeRepo(t, "1.2.4")
	v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
	for _, o := range []gitlabtest.EventOptions{
		{Action: "update"}, // labels or title only: no oldrev
		{Action: "close"},
		{Action: "approved"},
	} {
		body, err := srv.MergeRequestEvent(proj, mr.IID, o)
		require.NoError(t, err)
		h := newHooks(t, gitlabx.HooksConfig{})
		v.Register(h)
		deliver(h, gitlabtest.MergeRequestHook, body)
		require.NoError(t, h.Shutdown(t.Context()))
	}
	assert.Empty(t, srv.Requests(), "API calls for events that need no check")
}

func TestVersionCheckCancelled(t *testing.T) {
	srv, mr := fakeRepo(t, "1.2.4")
	v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := v.Check(ctx, mrRef(mr))
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, gitlabx.Transient(err))
}

func TestVersionCheckRunsOnCodeAndTargetChanges(t *testing.T) {
	tests := []struct {
		name string
		o    gitlabtest.EventOptions
	}{
		{"open", gitlabtest.EventOptions{Action: "open"}},
		{"reopen", gitlabtest.EventOptions{Action: "reopen"}},
		{"new commits", gitlabtest.EventOptions{Action: "update", OldRev: "abc123"}},
		{"target branch changed", gitlabtest.EventOptions{Action: "update", Changes: map[string]any{
			"target_branch": map[string]any{"previous": "develop", "current": "main"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, mr := fakeRepo(t, "1.2.4")
			v := newCheck(t, srv, gitlabx.VersionCheckConfig{})
			h := newHooks(t, gitlabx.HooksConfig{})
			v.Register(h)
			body, err := srv.MergeRequestEvent(proj, mr.IID, tt.o)
			require.NoError(t, err)
			deliver(h, gitlabtest.MergeRequestHook, body)
			require.NoError(t, h.Shutdown(t.Context()))
			assert.Len(t, versionNotes(srv, mr.IID), 1, "version notes after %s", tt.name)
		})
	}
}
