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

// Release notes from a list of commits, newest first.
func ExampleNewNotes() {
	n := semtag.NewNotes("v1.3.0", "v1.2.0", []semtag.Commit{
		{SHA: "4f1c2d3e5a6b7c8d9e0f4f1c2d3e5a6b7c8d9e0f", Message: "feat(api)!: Resize takes a context\n\nSee merge request libs/lib!42"},
		{SHA: "9e0f4f1c2d3e5a6b7c8d9e0f4f1c2d3e5a6b7c8d", Message: "fix: off by one"},
		{SHA: "5a6b7c8d9e0f4f1c2d3e5a6b7c8d9e0f4f1c2d3e", Message: "Update README"},
	})
	fmt.Print(n.Markdown())
	// Output:
	// ## v1.3.0
	//
	// Changes since v1.2.0.
	//
	// ### Breaking changes
	//
	// - **api:** Resize takes a context (libs/lib!42, 4f1c2d3e)
	//
	// ### Fixes
	//
	// - off by one (9e0f4f1c)
	//
	// ### Other
	//
	// - Update README (5a6b7c8d)
}

// A pre-release: v1.3.0-rc.N until a run without Pre finalizes v1.3.0.
func ExampleNext_preRelease() {
	d, _ := semtag.Next(semtag.Input{Tags: []string{"v1.2.0", "v1.3.0-rc.1"}, Bump: semtag.BumpMinor, Pre: "rc"})
	fmt.Println(d.Tag)
	// Output: v1.3.0-rc.2
}
