package main

// racelogChapter is the tour's racelog chapter.
func racelogChapter() chapter {
	return chapter{
		name:    "racelog",
		summary: "find a real data race in a log and file it once",
	}
}
