package main

// freshdeskChapter is the tour's freshdesk chapter.
func freshdeskChapter() chapter {
	return chapter{
		name:    "freshdesk",
		summary: "escalate a help-desk ticket to a GitLab issue, twice, without duplicates",
	}
}
