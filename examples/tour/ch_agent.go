package main

// agentChapter is the tour's agent chapter.
func agentChapter() chapter {
	return chapter{
		name:    "agent",
		summary: "install a program through the host agent and watch it restart",
	}
}
