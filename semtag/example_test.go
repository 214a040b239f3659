package semtag_test

import (
	"context"
	"fmt"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/semtag"
)

// Next is a pure function: policies can be checked without a repository.
func ExampleNext() {
	d, err := semtag.Next(semtag.Input{
		Tags:    []string{"v1.2", "v0.9.0", "v0.10.0-rc.1", "tools/v3.0.0", "v0.9.1+build.5"},
		Bump:    semtag.BumpConventional,
		Commits: []semtag.Commit{{Message: "fix: off by one"}, {Message: "feat(api): add Resize"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Base, "->", d.Tag, d.Level)
	// Output: v0.9.1+build.5 -> v0.10.0 minor
}

// A tag job over the GitLab API, here against the in-memory fake.
func ExampleTagger() {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "libs/lib"})
	first := srv.AddCommit(7, "main", gitlabtest.Commit{Message: "initial", Paths: []string{"go.mod"}})
	srv.AddTag(7, gitlabtest.Tag{Name: "v1.4.2", Commit: first.SHA})
	head := srv.AddCommit(7, "main", gitlabtest.Commit{Message: "fix: nil map", Paths: []string{"lib.go"}})

	run := func() {
		repo, err := semtag.NewGitLab(srv.Client(), semtag.GitLabConfig{Project: 7, Commit: head.SHA})
		if err != nil {
			fmt.Println(err)
			return
		}
		tagger, err := semtag.NewTagger(repo, semtag.Config{})
		if err != nil {
			fmt.Println(err)
			return
		}
		res, err := tagger.Run(context.Background())
		switch {
		case err != nil:
			fmt.Println(err)
		case res.Created:
			fmt.Println("created", res.Tag)
		default:
			fmt.Println("already released as", res.Released)
		}
	}
	run()
	run() // a re-run pipeline
	// Output:
	// created v1.4.3
	// already released as v1.4.3
}
