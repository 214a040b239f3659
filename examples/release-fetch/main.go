// Command release-fetch makes FILE a copy of URL with the given SHA-256:
// it downloads nothing when FILE already has that checksum, and never
// leaves a partial FILE (it downloads beside FILE, verifies, then renames).
//
// Usage:
//
//	release-fetch -url URL -sha256 HEX -o FILE
//
// It prints "up to date FILE" or "downloaded FILE size=N" on stdout and
// exits 1 on any failure, FILE then being exactly as it was.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/opskit/opskit/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "release-fetch:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("release-fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "download from `URL` (required)")
	sum := fs.String("sha256", "", "the expected SHA-256 in `HEX` (required)")
	out := fs.String("o", "", "write to `FILE` (required)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: release-fetch -url URL -sha256 HEX -o FILE\n\nDownloads URL to FILE unless FILE already has the checksum; never leaves a partial FILE.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 || *url == "" || *sum == "" || *out == "" {
		fmt.Fprintln(stderr, "release-fetch: -url, -sha256 and -o are required")
		fs.Usage()
		return errUsage
	}
	res, err := release.Fetch(ctx, *url, *out, *sum)
	if err != nil {
		return err
	}
	if res.Skipped {
		fmt.Fprintf(stdout, "up to date %s\n", *out)
	} else {
		fmt.Fprintf(stdout, "downloaded %s size=%d\n", *out, res.Size)
	}
	return nil
}
