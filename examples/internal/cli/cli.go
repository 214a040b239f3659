package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

// ErrUsage is the error a program's run returns for a command line it cannot
// use; Main exits 2 on it without printing it, because whoever returned it
// has already said what is wrong (see [Usagef] and [Parse]).
var ErrUsage = errors.New("usage")

// Main runs run with a context that is cancelled on os.Interrupt and on the
// given signals, and exits with the code its error stands for:
//
//   - nil or [flag.ErrHelp] (-h was given): exit 0;
//   - [ErrUsage]: exit 2, printing nothing more;
//   - an error marked [Silent]: exit 1, printing nothing more;
//   - any other error: exit 1 after printing "name: err" to stderr.
//
// Errors are matched with errors.Is and errors.As, so wrapped errors count.
// Main is the only place in examples/ that calls os.Exit.
func Main(name string, run func(ctx context.Context) error, signals ...os.Signal) {
	ctx, stop := signal.NotifyContext(context.Background(), append([]os.Signal{os.Interrupt}, signals...)...)
	err := run(ctx)
	stop()
	if code := exitCode(name, err, os.Stderr); code != 0 {
		os.Exit(code)
	}
}

// exitCode maps the error of a program called name to its exit code as Main
// documents, printing "name: err" to stderr when the error is not reported
// yet.
func exitCode(name string, err error, stderr io.Writer) int {
	var s silentError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	case errors.As(err, &s):
		return 1
	default:
		fmt.Fprintln(stderr, name+":", err)
		return 1
	}
}

// Silent marks err as already reported, for failures the program has
// described on its own output (such as "some hosts failed" after one line per
// host): [Main] exits 1 on it, or on an error wrapping it, without printing
// it. The result has err's message and errors.Is and errors.As see err
// through it.
func Silent(err error) error {
	return silentError{err}
}

type silentError struct{ error }

func (e silentError) Unwrap() error { return e.error }

// NewFlagSet returns a flag set called name that returns its errors
// (flag.ContinueOnError) and writes to output. Its Usage prints usage as it
// is, then the flags with their defaults; usage, as a program's help
// conventionally does, ends with "Flags:" and a newline.
func NewFlagSet(name string, output io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		io.WriteString(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args into fs, which must use flag.ContinueOnError. It returns
// nil, [flag.ErrHelp] when -h or -help was given (fs has printed its usage),
// or [ErrUsage] for any other parse error (fs has printed the error and its
// usage).
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ErrUsage
	}
	return nil
}

// Usagef reports a command line fs cannot use: it prints
// "<fs.Name()>: <message>" and a newline to fs.Output(), formatting the
// message with fmt.Sprintf(format, a...), then calls fs.Usage, and returns
// [ErrUsage] for run to return.
func Usagef(fs *flag.FlagSet, format string, a ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return ErrUsage
}
