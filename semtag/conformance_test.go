package semtag_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/semtag"
	"github.com/opskit/opskit/semtag/semtagtest"
)

// The three Repos pass the same checks: the in-memory one, the local git
// backend on real git, and the GitLab backend on the fake.

func TestRepoMemory(t *testing.T) {
	semtagtest.TestRepo(t, semtagtest.Build)
}

func TestIntegrationRepoGit(t *testing.T) {
	semtagtest.TestRepo(t, func(t *testing.T, h semtagtest.History) semtagtest.Built {
		r := newGitRepo(t, false)
		var shas []string
		for _, c := range h.Commits {
			for _, p := range slices.Sorted(maps.Keys(c.Files)) {
				r.writeFile(p, c.Files[p])
			}
			r.run("commit", "-q", "--allow-empty", "-m", c.Message)
			shas = append(shas, r.run("rev-parse", "HEAD"))
		}
		for _, tg := range h.Tags {
			if tg.Annotated {
				r.run("tag", "-a", "-m", "annotated", tg.Name, shas[tg.Commit])
			} else {
				r.run("tag", tg.Name, shas[tg.Commit])
			}
		}
		return semtagtest.Built{Repo: r.backend(semtag.GitConfig{}), SHAs: shas}
	})
}

func TestRepoGitLab(t *testing.T) {
	semtagtest.TestRepo(t, func(t *testing.T, h semtagtest.History) semtagtest.Built {
		srv := gitlabtest.NewServer(t)
		srv.AddProject(gitlabtest.Project{ID: pid, Path: "libs/lib"})
		var shas []string
		for _, c := range h.Commits {
			files := map[string][]byte{}
			for p, content := range c.Files {
				files[p] = []byte(content)
			}
			shas = append(shas, srv.AddCommit(pid, "main", gitlabtest.Commit{Message: c.Message, Files: files}).SHA)
		}
		for _, tg := range h.Tags {
			msg := ""
			if tg.Annotated {
				msg = "annotated"
			}
			srv.AddTag(pid, gitlabtest.Tag{Name: tg.Name, Commit: shas[tg.Commit], Message: msg})
		}
		return semtagtest.Built{Repo: gitlabBackend(t, srv, shas[len(shas)-1]), SHAs: shas}
	})
}
