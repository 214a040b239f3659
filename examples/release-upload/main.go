// Command release-upload sends a release tarball with its metadata to a
// release-server (POST /release) and exits 0 only when the server confirmed
// the checksum computed while sending.
//
// Usage:
//
//	release-upload -url URL -secret-file F -product P -version V [-tag T] [-build B] [-revision R] [-commit C] [-log-file F] [-rpms] [-resume] FILE
//
// -resume sends FILE over the receiver's resumable endpoint (tus 1.0,
// URL/uploads/): an interrupted transfer continues where it stopped when
// the same command runs again, sending only the rest. Its state is kept in
// FILE.upload between attempts and removed once the release is stored.
//
// Without -secret-file the secret comes from $RELEASE_SECRET. On a terminal
// it shows a progress line on stderr. On success it prints
// "stored|already stored PRODUCT VERSION sha256=HEX size=N" on stdout.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/release"
)

func main() {
	cli.Main("release-upload", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}, syscall.SIGTERM)
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("release-upload", stderr, "Usage: release-upload -url URL -secret-file F -product P -version V [-tag T] [-build B] [-revision R] [-commit C] [-log-file F] [-rpms] [-resume] FILE\n\nStreams FILE to the release API and exits 0 only when the server confirmed its checksum.\n\nFlags:\n")
	url := fs.String("url", "", "the release API `URL`, e.g. http://updates:8080/release (required)")
	secretFile := fs.String("secret-file", "", "read the secret from `FILE` (default: $RELEASE_SECRET)")
	var md release.Metadata
	fs.StringVar(&md.Product, "product", "", "product name (required)")
	fs.StringVar(&md.Version, "version", "", "version (required)")
	fs.StringVar(&md.Tag, "tag", "", "git tag")
	fs.StringVar(&md.Build, "build", "", "build number")
	fs.StringVar(&md.Revision, "revision", "", "revision")
	fs.StringVar(&md.Commit, "commit", "", "commit hash")
	logFile := fs.String("log-file", "", "read the changelog from `FILE`")
	fs.BoolVar(&md.RPMs, "rpms", false, "the release carries RPM packages")
	progress := fs.String("progress", "auto", "progress line on stderr: auto (on a terminal), always or never")
	resume := fs.Bool("resume", false, "resumable upload: an interrupted transfer continues on the next run (state in FILE.upload)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *url == "" || md.Product == "" || md.Version == "" {
		return cli.Usagef(fs, "-url, -product, -version and exactly one FILE are required")
	}
	showProgress := false
	switch *progress {
	case "auto":
		showProgress = isTerminal(stderr)
	case "always":
		showProgress = true
	case "never":
	default:
		fmt.Fprintf(stderr, "release-upload: -progress must be auto, always or never, not %q\n", *progress)
		return errUsage
	}
	// The first line of the file: release-server's rotation file lists the
	// current secret first.
	secret, err := opskit.SecretFromFileOrEnv(*secretFile, "RELEASE_SECRET")
	if err != nil {
		return err
	}
	if *logFile != "" {
		b, err := os.ReadFile(*logFile)
		if err != nil {
			return err
		}
		md.Log = string(b)
	}
	file := fs.Arg(0)
	up := &release.Uploader{URL: *url, Secret: secret}
	var bar *progressLine
	if showProgress {
		bar = &progressLine{w: stderr, name: file, start: time.Now()}
		up.Progress = bar.update
	}
	var rcpt release.Receipt
	if *resume {
		rcpt, err = up.UploadFileResumable(ctx, md, file, file+".upload")
	} else {
		rcpt, err = up.UploadFile(ctx, md, file)
	}
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return err
	}
	what := "stored"
	if !rcpt.Created {
		what = "already stored"
	}
	fmt.Fprintf(stdout, "%s %s %s sha256=%s size=%d\n", what, rcpt.Product, rcpt.Version, rcpt.SHA256, rcpt.Size)
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressLine redraws one line: percentage, bytes and rate.
type progressLine struct {
	w     io.Writer
	name  string
	start time.Time
	last  time.Time
	sent  int64
	total int64
	drawn bool
}

func (p *progressLine) update(_ release.Metadata, sent, total int64) {
	p.sent, p.total = sent, total
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond || (total >= 0 && sent == total) {
		p.last = now
		p.draw()
	}
}

func (p *progressLine) draw() {
	rate := float64(p.sent) / max(time.Since(p.start).Seconds(), 1e-3)
	pct := ""
	if p.total > 0 {
		pct = fmt.Sprintf("%3d%% ", p.sent*100/p.total)
	}
	fmt.Fprintf(p.w, "\r%s %s%s / %s  %s/s   ", p.name, pct, size(p.sent), size(p.total), size(int64(rate)))
	p.drawn = true
}

func (p *progressLine) finish() {
	if p.drawn {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

func size(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
