package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestExitCode(t *testing.T) {
	failed := Silent(errors.New("some hosts failed"))
	for _, tc := range []struct {
		name   string
		err    error
		code   int
		stderr string
	}{
		{"nil", nil, 0, ""},
		{"help", flag.ErrHelp, 0, ""},
		{"wrapped help", fmt.Errorf("parse: %w", flag.ErrHelp), 0, ""},
		{"usage", ErrUsage, 2, ""},
		{"wrapped usage", fmt.Errorf("bad: %w", ErrUsage), 2, ""},
		{"silent", failed, 1, ""},
		{"wrapped silent", fmt.Errorf("%w: 2 of 3", failed), 1, ""},
		{"other", errors.New("boom"), 1, "prog: boom\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := exitCode("prog", tc.err, &stderr); got != tc.code {
				t.Errorf("exitCode(%v) = %d; want %d", tc.err, got, tc.code)
			}
			if got := stderr.String(); got != tc.stderr {
				t.Errorf("exitCode(%v) printed %q; want %q", tc.err, got, tc.stderr)
			}
		})
	}
}

func TestSilent(t *testing.T) {
	inner := errors.New("some hosts failed")
	err := Silent(inner)
	if err.Error() != inner.Error() {
		t.Errorf("Silent(err).Error() = %q; want %q", err.Error(), inner.Error())
	}
	if !errors.Is(err, inner) {
		t.Error("errors.Is(Silent(err), err) = false")
	}
	if !errors.Is(err, err) {
		t.Error("a Silent error does not match itself")
	}
}

func newFlagSet(out *bytes.Buffer) *flag.FlagSet {
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Bool("v", false, "verbose")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "Usage: prog [-v]") }
	return fs
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want error
		out  string
	}{
		{"ok", []string{"-v", "x"}, nil, ""},
		{"help", []string{"-h"}, flag.ErrHelp, "Usage: prog [-v]\n"},
		{"unknown flag", []string{"-bogus"}, ErrUsage, "flag provided but not defined: -bogus\nUsage: prog [-v]\n"},
		{"bad value", []string{"-v=maybe"}, ErrUsage, "invalid boolean value \"maybe\" for -v: parse error\nUsage: prog [-v]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			fs := newFlagSet(&out)
			if err := Parse(fs, tc.args); err != tc.want {
				t.Errorf("Parse(%q) = %v; want %v", tc.args, err, tc.want)
			}
			if got := out.String(); got != tc.out {
				t.Errorf("Parse(%q) printed %q; want %q", tc.args, got, tc.out)
			}
		})
	}
}

func TestUsagef(t *testing.T) {
	var out bytes.Buffer
	fs := newFlagSet(&out)
	if err := Usagef(fs, "unexpected arguments %q", []string{"a", "b"}); err != ErrUsage {
		t.Errorf("Usagef = %v; want ErrUsage", err)
	}
	want := "prog: unexpected arguments [\"a\" \"b\"]\nUsage: prog [-v]\n"
	if got := out.String(); got != want {
		t.Errorf("Usagef printed %q; want %q", got, want)
	}
}

func TestUsagefNoArgs(t *testing.T) {
	var out bytes.Buffer
	fs := newFlagSet(&out)
	_ = Usagef(fs, "-user is required")
	if got, want := out.String(), "prog: -user is required\nUsage: prog [-v]\n"; got != want {
		t.Errorf("Usagef printed %q; want %q", got, want)
	}
}

func TestNewFlagSet(t *testing.T) {
	var out bytes.Buffer
	fs := NewFlagSet("prog", &out, "Usage: prog [-v]\n\n100% plain text\n\nFlags:\n")
	fs.Bool("v", false, "be verbose")
	if err := Parse(fs, []string{"-h"}); err != flag.ErrHelp {
		t.Errorf("Parse(-h) = %v; want flag.ErrHelp", err)
	}
	want := "Usage: prog [-v]\n\n100% plain text\n\nFlags:\n  -v\tbe verbose\n"
	if got := out.String(); got != want {
		t.Errorf("-h printed %q; want %q", got, want)
	}
	if err := Parse(fs, []string{"-x"}); err != ErrUsage {
		t.Errorf("Parse(-x) = %v; want ErrUsage", err)
	}
	if fs.Name() != "prog" || fs.ErrorHandling() != flag.ContinueOnError {
		t.Errorf("NewFlagSet = %q, %v; want \"prog\", ContinueOnError", fs.Name(), fs.ErrorHandling())
	}
}

func TestReadHosts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	if err := os.WriteFile(path, []byte("# web tier\nweb1\nweb2:2222\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHosts(path)
	if err != nil || len(got) != 2 || got[0] != "web1" || got[1] != "web2:2222" {
		t.Errorf("ReadHosts(%s) = %q, %v; want [web1 web2:2222]", path, got, err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if got, err := ReadHosts(empty); err != nil || len(got) != 0 {
		t.Errorf("ReadHosts(empty file) = %q, %v; want no hosts and no error", got, err)
	}
	if _, err := ReadHosts(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadHosts(missing) error = %v; want os.ErrNotExist", err)
	}
}
