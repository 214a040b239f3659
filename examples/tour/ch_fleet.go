package main

// fleetChapter is the tour's fleet chapter.
func fleetChapter() chapter {
	return chapter{
		name:    "fleet",
		summary: "fan out over SSH servers, refusing a changed host key",
	}
}
