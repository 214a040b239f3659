package main

// semtagChapter is the tour's semtag chapter.
func semtagChapter() chapter {
	return chapter{
		name:    "semtag",
		summary: "tag merges on main with the next semantic version",
	}
}
