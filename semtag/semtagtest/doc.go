// Package semtagtest helps test code built on semtag: Repo is an in-memory
// semtag.Repo with failure switches, and TestRepo checks that any
// semtag.Repo implementation behaves as the Tagger expects.
//
// Import it only from tests, examples and tools that demonstrate semtag.
//
// The shortest useful program tests a Tagger against a racing pipeline:
//
//	repo := semtagtest.NewRepo(semtagtest.History{Commits: []semtagtest.Commit{{Message: "initial"}}})
//	repo.CreateHook = func(name, _ string) error { // another pipeline wins the first time
//		repo.AddTag(name, "elsewhere")
//		repo.CreateHook = nil
//		return nil
//	}
//	tagger, _ := semtag.NewTagger(repo, semtag.Config{})
//	res, err := tagger.Run(ctx) // res.Tag == "v0.0.2", res.Attempts == 2
//
// # Testing
//
// semtag's own tests run TestRepo against Repo, the local git backend on
// real git repositories and the GitLab backend on gitlabx/gitlabtest, so
// the three agree with each other and with git.
package semtagtest
