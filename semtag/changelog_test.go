package semtag_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/semtag"
)

func subjects(cs []semtag.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Subject)
	}
	return out
}

func TestNotesGrouping(t *testing.T) {
	commits := []semtag.Commit{
		{SHA: "a000000000000000000000000000000000000001", Message: "docs(readme): typo"},
		{SHA: "a000000000000000000000000000000000000002", Message: "fix(api): nil map\n\nSee merge request libs/lib!7"},
		{SHA: "a000000000000000000000000000000000000003", Message: "feat: knob"},
		{SHA: "a000000000000000000000000000000000000004", Message: "feat(cli)!: drop -x"},
		{SHA: "a000000000000000000000000000000000000005", Message: "refactor: names\n\nBREAKING CHANGE: Foo is now Bar,\nand Baz is gone.\nReviewed-by: Z"},
		{SHA: "a000000000000000000000000000000000000006", Message: "Update README"},
		{SHA: "a000000000000000000000000000000000000007", Message: "FIX: shouting\n\nBREAKING-CHANGE #12 flags renamed"},
		{SHA: "a000000000000000000000000000000000000008", Message: "Revert \"feat: knob\""},
		{SHA: "a000000000000000000000000000000000000009", Message: "oops <!-- opskit:x --> & <b>\n\nBREAKING CHANGE: not conventional, so not breaking"},
		{SHA: "a00000000000000000000000000000000000000a", Message: "chore(release): v1.1.0 [skip ci]\n\nSemtag-Changelog: v1.1.0"},
	}
	n := semtag.NewNotes("v2.0.0", "v1.1.0", commits)
	assert.Equal(t, []string{"drop -x", "names", "shouting"}, subjects(n.Breaking), "breaking: ! and both footer spellings")
	assert.Equal(t, []string{"knob"}, subjects(n.Features))
	assert.Equal(t, []string{"nil map"}, subjects(n.Fixes))
	assert.Equal(t, []string{"typo", "Update README", "Revert \"feat: knob\"", "oops <!-- opskit:x --> & <b>"}, subjects(n.Other),
		"other types and non-conventional commits under Other; the changelog commit left out")
	require.Len(t, n.Breaking, 3)
	assert.Equal(t, []string{"Foo is now Bar, and Baz is gone."}, n.Breaking[1].BreakingNotes, "footer text runs to the next footer")
	assert.Equal(t, []string{"12 flags renamed"}, n.Breaking[2].BreakingNotes)
	assert.Equal(t, []string{"libs/lib!7"}, n.Fixes[0].MergeRequests)
	assert.Equal(t, 9, n.Len())

	want := "## v2.0.0\n\nChanges since v1.1.0.\n" +
		"\n### Breaking changes\n\n" +
		"- **cli:** drop -x (a0000000)\n" +
		"- names (a0000000)\n\n  Foo is now Bar, and Baz is gone.\n" +
		"- shouting (a0000000)\n\n  12 flags renamed\n" +
		"\n### Features\n\n- knob (a0000000)\n" +
		"\n### Fixes\n\n- **api:** nil map (libs/lib!7, a0000000)\n" +
		"\n### Other\n\n- docs(readme): typo (a0000000)\n- Update README (a0000000)\n- Revert \"feat: knob\" (a0000000)\n" +
		"- oops \\<!-- opskit:x --\\> & \\<b\\> (a0000000)\n"
	assert.Equal(t, want, n.Markdown())

	empty := semtag.NewNotes("v1.0.1", "v1.0.0", nil)
	assert.Equal(t, "## v1.0.1\n\nChanges since v1.0.0.\n\nNo changes.\n", empty.Markdown(), "empty range")
	assert.Equal(t, "## v0.1.0\n\nNo changes.\n", semtag.NewNotes("v0.1.0", "", nil).Markdown())
}

func TestPrevious(t *testing.T) {
	tags := []string{"v1.0.0", "v1.1.0-rc.1", "v1.1.0-rc.2", "v1.1.0", "v1.2.0-rc.1", "tools/v9.0.0", "v0.9.0", "v1.0.0+b"}
	for _, tc := range []struct{ prefix, tag, want string }{
		{"", "v1.2.0", "v1.1.0"},
		{"", "v1.2.0-rc.2", "v1.2.0-rc.1"},
		{"", "v1.1.0", "v1.0.0"}, // skips its own pre-releases
		{"", "v1.1.0-rc.1", "v1.0.0"},
		{"", "v0.9.0", ""},
		{"tools/", "tools/v9.1.0", "tools/v9.0.0"},
		{"", "latest", ""},
	} {
		assert.Equal(t, tc.want, semtag.Previous(tc.prefix, tc.tag, tags), "Previous(%q, %q)", tc.prefix, tc.tag)
	}
}

func TestInsertChangelog(t *testing.T) {
	sec := func(tag string) string { return semtag.NewNotes(tag, "", nil).Markdown() }
	out, changed := semtag.InsertChangelog(nil, "v1.0.0", sec("v1.0.0"))
	require.True(t, changed)
	assert.Equal(t, "# Changelog\n\n<!-- semtag:v1.0.0 -->\n## v1.0.0\n\nNo changes.\n", string(out))

	again, changed := semtag.InsertChangelog(out, "v1.0.0", sec("v1.0.0"))
	assert.False(t, changed, "the tag's section is there already")
	assert.Equal(t, string(out), string(again))

	out, changed = semtag.InsertChangelog(out, "v1.1.0", sec("v1.1.0"))
	require.True(t, changed)
	assert.Equal(t, "# Changelog\n\n<!-- semtag:v1.1.0 -->\n## v1.1.0\n\nNo changes.\n\n<!-- semtag:v1.0.0 -->\n## v1.0.0\n\nNo changes.\n", string(out), "newest first")

	hand := "# Changes\n\nWritten by hand.\n\n## 0.9 (old)\n\n- stuff\n"
	out, _ = semtag.InsertChangelog([]byte(hand), "v1.0.0", sec("v1.0.0"))
	assert.Equal(t, "# Changes\n\nWritten by hand.\n\n<!-- semtag:v1.0.0 -->\n## v1.0.0\n\nNo changes.\n\n## 0.9 (old)\n\n- stuff\n", string(out), "above the first older section")
	out, _ = semtag.InsertChangelog([]byte("# Changes\nIntro."), "v1.0.0", sec("v1.0.0"))
	assert.Equal(t, "# Changes\nIntro.\n\n<!-- semtag:v1.0.0 -->\n## v1.0.0\n\nNo changes.\n", string(out))
}

// TestIntegrationChangelogGit reads notes from a real git history with a
// GitLab-style merge commit, breaking-change footers, a directory-limited
// module and an empty range.
func TestIntegrationChangelogGit(t *testing.T) {
	r := newGitRepo(t, false)
	r.commit("initial", "go.mod")
	r.run("tag", "-a", "-m", "r", "v1.0.0")
	r.run("tag", "tools/v0.1.0")
	direct := r.commit("fix: direct on main\n\nBREAKING CHANGE: the config moved", "a.go")
	r.run("checkout", "-q", "-b", "feature")
	f1 := r.commit("feat(tools): a tool", "tools/t.go")
	f2 := r.commit("wip", "b.go")
	r.run("checkout", "-q", "main")
	r.commit("docs: on main meanwhile", "docs.md")
	r.run("merge", "-q", "--no-ff", "-m", "Merge branch 'feature' into 'main'\n\nfeat(tools): a tool\n\nSee merge request libs/lib!12", "feature")
	head := r.run("rev-parse", "HEAD")
	repo := r.backend(semtag.GitConfig{})

	n, err := semtag.Changelog(t.Context(), repo, "", "v2.0.0", head)
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", n.Previous)
	require.Len(t, n.Breaking, 1)
	assert.Equal(t, direct, n.Breaking[0].SHA)
	assert.Equal(t, []string{"the config moved"}, n.Breaking[0].BreakingNotes)
	assert.Empty(t, n.Breaking[0].MergeRequests, "a commit made on main has no merge request")
	require.Len(t, n.Features, 1)
	assert.Equal(t, f1, n.Features[0].SHA)
	assert.Equal(t, []string{"libs/lib!12"}, n.Features[0].MergeRequests, "from the merge commit that brought it in")
	assert.Equal(t, []string{"on main meanwhile", "wip"}, subjects(n.Other), "the merge commit itself is not listed")
	for _, c := range n.Other {
		if c.SHA == f2 {
			assert.Equal(t, []string{"libs/lib!12"}, c.MergeRequests)
		} else {
			assert.Empty(t, c.MergeRequests)
		}
	}
	assert.Contains(t, n.Markdown(), "- **tools:** a tool (libs/lib!12, "+f1[:8]+")\n")

	// The tools/ module: only its commits, still with the merge request.
	n, err = semtag.Changelog(t.Context(), repo, "tools/", "tools/v0.2.0", head)
	require.NoError(t, err)
	assert.Equal(t, "tools/v0.1.0", n.Previous)
	assert.Equal(t, []string{"a tool"}, subjects(n.Features))
	assert.Equal(t, 1, n.Len())
	if assert.Len(t, n.Features, 1) {
		assert.Equal(t, []string{"libs/lib!12"}, n.Features[0].MergeRequests, "a directory-limited history still finds the merge")
	}

	// Empty range: a module whose directory did not change.
	r.run("tag", "api/v0.1.0", head)
	n, err = semtag.Changelog(t.Context(), repo, "api/", "api/v0.1.1", head)
	require.NoError(t, err)
	assert.Equal(t, 0, n.Len())
	assert.Contains(t, n.Markdown(), "No changes.")
}

// TestChangelogGitLab reads the same kind of history through the API
// backend, with a merge made by the fake's merge-request merge.
func TestChangelogGitLab(t *testing.T) {
	srv, first := newProject(t, "example.com/lib")
	srv.AddTag(pid, gitlabtest.Tag{Name: "v1.0.0", Commit: first, Message: "r"})
	srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "fix!: direct\n\nBREAKING CHANGE: gone", Paths: []string{"a.go"}})
	f1 := srv.AddCommit(pid, "feature", gitlabtest.Commit{Message: "feat: from the MR", Paths: []string{"b.go"}}).SHA
	f2 := srv.AddCommit(pid, "feature", gitlabtest.Commit{Message: "fix(b): and a fix", Paths: []string{"b.go"}}).SHA
	mr := srv.AddMergeRequest(pid, gitlabtest.MergeRequest{Title: "feat: from the MR", SourceBranch: "feature", TargetBranch: "main"})
	merged := srv.MergeMergeRequest(pid, mr.IID)

	n, err := semtag.Changelog(t.Context(), gitlabBackend(t, srv, merged.MergeCommitSHA), "", "v2.0.0", merged.MergeCommitSHA)
	require.NoError(t, err)
	assert.Equal(t, "v1.0.0", n.Previous)
	assert.Equal(t, []string{"direct"}, subjects(n.Breaking))
	assert.Equal(t, []string{"gone"}, n.Breaking[0].BreakingNotes)
	ref := fmt.Sprintf("libs/lib!%d", mr.IID)
	if assert.Len(t, n.Features, 1) {
		assert.Equal(t, f1, n.Features[0].SHA)
		assert.Equal(t, []string{ref}, n.Features[0].MergeRequests)
	}
	if assert.Len(t, n.Fixes, 1) {
		assert.Equal(t, f2, n.Fixes[0].SHA)
		assert.Equal(t, []string{ref}, n.Fixes[0].MergeRequests)
	}
	assert.Empty(t, n.Other, "the merge commit is not listed")

	// Empty range: the tag's previous release is on the same commit.
	srv.AddTag(pid, gitlabtest.Tag{Name: "v2.0.0", Commit: merged.MergeCommitSHA})
	n, err = semtag.Changelog(t.Context(), gitlabBackend(t, srv, merged.MergeCommitSHA), "", "v2.0.1", merged.MergeCommitSHA)
	require.NoError(t, err)
	assert.Equal(t, "v2.0.0", n.Previous)
	assert.Equal(t, 0, n.Len())
	assert.True(t, strings.HasSuffix(n.Markdown(), "No changes.\n"))
}

// BenchmarkNewNotes builds the notes of a first release over 10,000
// commits with a merge every fourth commit.
func BenchmarkNewNotes(b *testing.B) {
	var commits []semtag.Commit
	var size int64
	prev := ""
	for i := range 10000 {
		c := semtag.Commit{SHA: fmt.Sprintf("%040x", i+1), Message: fmt.Sprintf("feat(x): change %d\n\nBody.\n\nSee merge request g/p!%d", i, i)}
		if prev != "" {
			c.Parents = []string{prev}
		}
		if i%4 == 3 && i > 4 {
			c.Parents = append(c.Parents, fmt.Sprintf("%040x", i-1))
			c.Message = "Merge branch 'x' into 'main'\n\nSee merge request g/p!1"
		}
		prev = c.SHA
		size += int64(len(c.Message))
		commits = append([]semtag.Commit{c}, commits...)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		_ = semtag.NewNotes("v1.0.0", "", commits).Markdown()
	}
}
