package main

// gitlabxChapter is the tour's gitlabx chapter.
func gitlabxChapter() chapter {
	return chapter{
		name:    "gitlabx",
		summary: "webhooks: version check on a merge request, issue labels through the board",
	}
}
