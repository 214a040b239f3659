package semtagtest_test

import (
	"context"
	"fmt"

	"github.com/opskit/opskit/semtag"
	"github.com/opskit/opskit/semtag/semtagtest"
)

// A Tagger against a pipeline that creates the same version first.
func ExampleRepo() {
	repo := semtagtest.NewRepo(semtagtest.History{
		Commits: []semtagtest.Commit{{Message: "initial"}, {Message: "fix: a"}, {Message: "fix: b"}},
		Tags:    []semtagtest.TagSpec{{Name: "v1.0.0", Commit: 0}},
	})
	other := repo.SHAs()[1]
	repo.CreateHook = func(name, _ string) error {
		repo.CreateHook = nil
		repo.AddTag(name, other) // the other pipeline's tag, on its commit
		return nil
	}
	tagger, err := semtag.NewTagger(repo, semtag.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := tagger.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Tag, "after", res.Attempts, "attempts; created:", repo.Created)
	// Output: v1.0.2 after 2 attempts; created: [v1.0.2]
}
