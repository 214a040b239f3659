package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestTourRunsEveryChapter(t *testing.T) {
	var out, errb bytes.Buffer
	// The one-minute budget is checked by .ci/run's `go run ./examples/tour`;
	// here the tour shares the machine with every other package's tests.
	if err := run(t.Context(), []string{"-timeout", "5m"}, &out, &errb); err != nil {
		t.Fatalf("tour failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	for _, c := range chapters() {
		if !strings.Contains(out.String(), c.name+": "+c.summary) {
			t.Errorf("tour output lacks the heading of chapter %q:\n%s", c.name, out.String())
		}
	}
	if !strings.Contains(out.String(), "every chapter ran") {
		t.Errorf("tour output lacks its closing line:\n%s", out.String())
	}
}

func TestTourFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, &out, &errb); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run(-h) = %v; want flag.ErrHelp (exit 0)", err)
	}
	if !strings.Contains(errb.String(), "Usage: tour") {
		t.Errorf("run(-h) printed %q; want usage", errb.String())
	}
	for _, args := range [][]string{{"-bogus"}, {"-chapter", "nope"}, {"extra"}} {
		if err := run(t.Context(), args, &out, &errb); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v; want errUsage (exit 2)", args, err)
		}
	}
	out.Reset()
	if err := run(t.Context(), []string{"-list"}, &out, &errb); err != nil {
		t.Fatalf("run(-list) = %v", err)
	}
	if got := strings.Count(out.String(), "\n"); got != len(chapters()) {
		t.Errorf("run(-list) printed %d lines; want %d", got, len(chapters()))
	}
}
