package main

// workflowChapter is the tour's workflow chapter.
func workflowChapter() chapter {
	return chapter{
		name:    "workflow",
		summary: "canary rollouts: within budget, tripping it, resumed from the journal",
	}
}
