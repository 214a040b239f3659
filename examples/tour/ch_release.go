package main

// releaseChapter is the tour's release chapter.
func releaseChapter() chapter {
	return chapter{
		name:    "release",
		summary: "stream a release to the release API, reject a tampered one, skip a fetch",
	}
}
