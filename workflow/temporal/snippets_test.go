package temporal_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/opskit/opskit/workflow"
	"github.com/opskit/opskit/workflow/temporal"
)

// The root module's doc-snippet test cannot compile snippets that import
// this nested module (the core module must not pull Temporal), so the
// README's and doc.go's snippets are copied here, between the marker
// comments, where they compile; TestReadmeSnippet fails when they drift.

func readmeSnippet(ctx context.Context, c client.Client, targets []workflow.Target) error {
	// README begin
	def := &temporal.Definition{Targets: targets} // every worker builds the same one
	w := worker.New(c, "rollout", worker.Options{})
	temporal.Register(w, map[string]*temporal.Definition{"app": def})
	run, err := temporal.Start(ctx, c, client.StartWorkflowOptions{ID: "app-v2", TaskQueue: "rollout"}, def,
		temporal.Options{Definition: "app", CanaryNum: 1, Soak: time.Minute, Concurrency: 10, MaxFailures: 2})
	if err != nil {
		return err
	}
	report, status, err := temporal.Wait(ctx, run)
	// README end
	_, _ = report, status
	return err
}

// The snippets only need to compile.
var _, _ = readmeSnippet, docSnippet

func docSnippet(ctx context.Context, c client.Client, targets []workflow.Target) error {
	// doc.go begin
	def := &temporal.Definition{Targets: targets} // as for workflow.Runner
	w := worker.New(c, "rollout", worker.Options{})
	temporal.Register(w, map[string]*temporal.Definition{"app": def})
	go w.Run(worker.InterruptCh())

	run, err := temporal.Start(ctx, c, client.StartWorkflowOptions{ID: "app-v2", TaskQueue: "rollout"}, def,
		temporal.Options{Definition: "app", CanaryNum: 1, Soak: time.Minute, Concurrency: 10, MaxFailures: 2})
	if err != nil {
		return err
	}
	report, _, err := temporal.Wait(ctx, run) // as workflow.Runner.Run returns them
	// doc.go end
	_ = report
	return err
}

// between returns the lines of this file between "// NAME begin" and
// "// NAME end", one tab of indentation removed.
func between(t *testing.T, name string) string {
	t.Helper()
	src, err := os.ReadFile("snippets_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(src), "\t// "+name+" begin\n")
	body, _, ok2 := strings.Cut(body, "\t// "+name+" end\n")
	if !ok || !ok2 {
		t.Fatalf("snippets_test.go has no %q markers", name)
	}
	var b strings.Builder
	for line := range strings.Lines(body) {
		b.WriteString(strings.TrimPrefix(line, "\t"))
	}
	return b.String()
}

func TestReadmeSnippet(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### workflow/temporal (a module of its own)\n")
	if !ok {
		t.Fatal("README.md has no workflow/temporal section")
	}
	_, block, _ := strings.Cut(section, "```go\n")
	block, _, _ = strings.Cut(block, "```\n")
	if want := between(t, "README"); block != want {
		t.Errorf("README's workflow/temporal snippet differs from readmeSnippet in snippets_test.go\nREADME:\n%s\nsnippets_test.go:\n%s", block, want)
	}
}

func TestDocSnippet(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var block strings.Builder
	in := false
	for line := range strings.Lines(string(src)) {
		switch {
		case strings.HasPrefix(line, "//\t"):
			in = true
			block.WriteString(strings.TrimPrefix(line, "//\t"))
		case in && line == "//\n":
			block.WriteString("\n")
		case in:
			in = false
		}
		if !in && block.Len() > 0 {
			break
		}
	}
	got := strings.TrimRight(block.String(), "\n") + "\n"
	if want := between(t, "doc.go"); got != want {
		t.Errorf("doc.go's snippet differs from docSnippet in snippets_test.go\ndoc.go:\n%s\nsnippets_test.go:\n%s", got, want)
	}
}
