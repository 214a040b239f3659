package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/semtag"
)

// semtagChapter is the tour's semtag chapter.
func semtagChapter() chapter {
	return chapter{
		name:    "semtag",
		summary: "tag merges on main with the next semantic version",
		run:     runSemtag,
	}
}

// runSemtag merges three changes into a fake GitLab project and runs the
// tag job after each, as a pipeline on main would, then re-runs the last one.
func runSemtag(ctx context.Context, n *narrator) error {
	srv := gitlabtest.New()
	defer srv.Close()
	const project = 1
	srv.AddProject(gitlabtest.Project{ID: project, Path: "libs/widgets"})
	mainHead := srv.SetFile(project, "main", "go.mod", []byte("module example.com/widgets\n")).SHA
	n.Say("fake GitLab project libs/widgets, no tags yet; the tag job runs semtag in conventional mode and publishes a GitLab Release")

	tagJob := func(sha string) (semtag.Result, error) {
		repo, err := semtag.NewGitLab(srv.Client(), semtag.GitLabConfig{Project: project, Commit: sha})
		if err != nil {
			return semtag.Result{}, err
		}
		tagger, err := semtag.NewTagger(repo, semtag.Config{Bump: semtag.BumpConventional, Release: true})
		if err != nil {
			return semtag.Result{}, err
		}
		return tagger.Run(ctx)
	}

	merges := []struct{ branch, title, path, want string }{
		{"empty-names", "fix: reject empty widget names", "widget.go", "v0.0.1"},
		{"aspect", "fix(render): keep the aspect ratio", "render/render.go", "v0.0.2"},
		{"resize", "feat: add Widget.Resize", "widget.go", "v0.1.0"},
	}
	var last string
	for i, m := range merges {
		// A merge request: the change on its branch, then a merge commit on
		// main whose own header ("Merge branch ...") counts for nothing.
		work := srv.AddCommit(project, m.branch, gitlabtest.Commit{Message: m.title, Paths: []string{m.path}})
		merge := srv.AddCommit(project, "main", gitlabtest.Commit{
			Message: fmt.Sprintf("Merge branch '%s' into 'main'\n\n%s\n\nSee merge request libs/widgets!%d", m.branch, m.title, i+1),
			Parents: []string{mainHead, work.SHA},
			Paths:   []string{m.path},
		})
		last, mainHead = merge.SHA, merge.SHA
		res, err := tagJob(merge.SHA)
		if err != nil {
			return fmt.Errorf("tag job after merge %d: %w", i+1, err)
		}
		if !res.Created || res.Tag != m.want {
			return fmt.Errorf("tag job after merge %d: got %+v; want %s created", i+1, res, m.want)
		}
		base := res.Base
		if base == "" {
			base = "no tag (v0.0.0)"
		}
		n.Say("merge request !%d %q merged; tag job: base %s, %s bump -> created %s", i+1, m.title, base, res.Level, res.Tag)
	}

	rels := srv.Releases(project)
	if len(rels) != len(merges) {
		return fmt.Errorf("releases: got %d; want one per tag", len(rels))
	}
	latest := rels[len(rels)-1]
	n.Say("GitLab Release %s, with the notes:\n      %s", latest.TagName, strings.ReplaceAll(strings.TrimSpace(latest.Description), "\n", "\n      "))

	res, err := tagJob(last)
	if err != nil {
		return fmt.Errorf("re-run: %w", err)
	}
	if res.Created || res.Released != "v0.1.0" || res.ReleaseCreated || len(srv.Releases(project)) != len(merges) {
		return fmt.Errorf("re-run: got %+v; want nothing created", res)
	}
	n.Say("re-run of the last pipeline: HEAD already carries %s and its release, nothing created", res.Released)
	var names []string
	for _, t := range srv.Tags(project) {
		names = append(names, t.Name)
	}
	n.Say("tags on the project: %v", names)
	return nil
}
