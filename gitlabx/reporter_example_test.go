package gitlabx_test

import (
	"context"
	"fmt"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

// A daily job files a race the first time and comments when it comes back.
func ExampleIssueReporter() {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddProject(gitlabtest.Project{ID: 7, Path: "ops/app"})

	r := gitlabx.NewReporter(srv.Client(), 7)
	for _, day := range []string{"2026-11-21", "2026-11-22"} {
		res, err := r.Report(context.Background(), gitlabx.Report{
			Title:       "Race condition in example.com/app/cache.(*Cache).Set()",
			Fingerprint: "b5de30aa6e91be3f",
			Text:        "==================\nWARNING: DATA RACE\n...",
			Occurrences: 3,
			Hosts:       []string{"test1"},
			LogFiles:    []string{"/var/log/app.log"},
			RunID:       day,
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(day, res.Action, "issue", res.IID)
	}
	is := srv.Issues(7)[0]
	fmt.Println(is.Title, is.Labels)
	fmt.Print(srv.Notes(7, gitlabtest.IssueNoteable, is.IID)[0].Body)
	// Output:
	// 2026-11-21 created issue 1
	// 2026-11-22 commented issue 1
	// Race condition in example.com/app/cache.(*Cache).Set() [Race condition]
	// <!-- opskit:fingerprint=b5de30aa6e91be3f --> <!-- opskit:run=2026-11-22 -->
	// Seen again: 3 occurrences on `test1` in `/var/log/app.log`.
}
