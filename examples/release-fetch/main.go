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
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/release"
)

func main() {
	cli.Main("release-fetch", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}, syscall.SIGTERM)
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("release-fetch", stderr, "Usage: release-fetch -url URL -sha256 HEX -o FILE\n\nDownloads URL to FILE unless FILE already has the checksum; never leaves a partial FILE.\n\nFlags:\n")
	url := fs.String("url", "", "download from `URL` (required)")
	sum := fs.String("sha256", "", "the expected SHA-256 in `HEX` (required)")
	out := fs.String("o", "", "write to `FILE` (required)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *url == "" || *sum == "" || *out == "" {
		return cli.Usagef(fs, "-url, -sha256 and -o are required")
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
