// Command release-fetch makes FILE a copy of URL with the given SHA-256:
// it downloads nothing when FILE already has that checksum, and never
// leaves a partial FILE (it downloads beside FILE, verifies, then renames).
//
// Usage:
//
//	release-fetch -url URL [-sha256 HEX] -o FILE [-resume]
//	release-fetch -url URL -o FILE -exists
//
// Without -sha256 the download is verified against the server's
// Repr-Digest (RFC 9530; release.Receiver's Files serves it). -resume keeps
// an interrupted download as FILE.partial and continues it with an HTTP
// Range request next time, verifying the whole file at the end. -exists
// keeps FILE whenever it exists (for files that change often: existence
// decides), downloading only a missing one.
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
	fs := cli.NewFlagSet("release-fetch", stderr, "Usage: release-fetch -url URL [-sha256 HEX] -o FILE [-resume | -exists]\n\nDownloads URL to FILE unless FILE already has the checksum; never leaves a partial FILE.\n\nFlags:\n")
	url := fs.String("url", "", "download from `URL` (required)")
	sum := fs.String("sha256", "", "the expected SHA-256 in `HEX`; without it, the server's Repr-Digest is checked")
	out := fs.String("o", "", "write to `FILE` (required)")
	resume := fs.Bool("resume", false, "keep an interrupted download as FILE.partial and continue it next time (HTTP Range)")
	exists := fs.Bool("exists", false, "keep FILE whenever it exists; download only a missing FILE")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0 || *url == "" || *out == "":
		return cli.Usagef(fs, "-url and -o are required")
	case *exists && *sum != "":
		return cli.Usagef(fs, "-exists and -sha256 exclude each other: -exists keeps any existing FILE")
	}
	f := &release.Fetcher{Resume: *resume}
	if *exists {
		f.Mode = release.ExistsOrDownload
	}
	res, err := f.Fetch(ctx, *url, *out, *sum)
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
