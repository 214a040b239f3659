package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// ErrChecksumMismatch: the file that arrived on the host does not have
// the SHA-256 of the file sent; the destination was left untouched.
var ErrChecksumMismatch = errors.New("fleet: pushed file checksum mismatch")

// PushResult is what Push did on one host.
type PushResult struct {
	Host string
	// SHA256 is the hex checksum of the local file.
	SHA256 string
	// Bytes is the number of bytes sent (0 when skipped).
	Bytes int64
	// Skipped reports that the remote file already had the checksum, so
	// nothing was sent (its mode was still set).
	Skipped bool
	// Duration is the wall time of the push.
	Duration time.Duration
}

// pushExitMismatch is the exit status of the remote script on a checksum
// mismatch.
const pushExitMismatch = 86

// Push copies the local file src to dst on cmd host through ex (usually
// an *SSH), with mode perm. It streams the file into a temporary file
// beside dst, has the host compute its SHA-256 (sha256sum) and compare it
// with the local one, sets the mode, and renames it over dst, so dst is
// either the old file or the complete new one. When dst already has the
// checksum, nothing is sent. The host needs a POSIX sh and coreutils
// (sha256sum, mktemp, mv); dst must be an absolute path or relative to the
// login directory.
//
// A checksum mismatch is an error matching ErrChecksumMismatch; other
// remote failures are *ExitError, and connection failures *HostError.
func Push(ctx context.Context, ex Executor, host, src, dst string, perm fs.FileMode) (PushResult, error) {
	start := time.Now()
	res := PushResult{Host: host}
	if dst == "" || strings.HasSuffix(dst, "/") {
		return res, fmt.Errorf("fleet: push: destination %q is not a file path", dst)
	}
	f, err := os.Open(src)
	if err != nil {
		return res, fmt.Errorf("fleet: push: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return res, fmt.Errorf("fleet: push: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return res, fmt.Errorf("fleet: push: %s is not a regular file", src)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return res, fmt.Errorf("fleet: push: %s: %w", src, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	res.SHA256 = sum
	mode := fmt.Sprintf("%04o", perm.Perm())
	q := ShellQuote(dst)

	check := fmt.Sprintf(`if [ -f %[1]s ] && [ "$(sha256sum < %[1]s | cut -d' ' -f1)" = %[2]s ]; then chmod %[3]s %[1]s && echo same; else echo differ; fi`, q, sum, mode)
	out, err := ex.Run(ctx, Command{Host: host, Shell: check, MaxOutput: 4096})
	if err != nil {
		res.Duration = time.Since(start)
		return res, err
	}
	if strings.TrimSpace(string(out.Stdout)) == "same" {
		res.Skipped, res.Duration = true, time.Since(start)
		return res, nil
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return res, fmt.Errorf("fleet: push: %w", err)
	}
	dir, base := path.Split(dst)
	if dir == "" {
		dir = "."
	}
	script := fmt.Sprintf(`set -e
tmp=$(mktemp %[1]s)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
got=$(sha256sum < "$tmp" | cut -d' ' -f1)
if [ "$got" != %[2]s ]; then echo "got sha256 $got" >&2; exit %[5]d; fi
chmod %[3]s "$tmp"
sync "$tmp" 2>/dev/null || true
mv -f "$tmp" %[4]s
trap - EXIT`, ShellQuote(path.Join(dir, "."+base+".opskit-XXXXXX")), sum, mode, q, pushExitMismatch)
	cr := &countReader{r: f}
	_, err = ex.Run(ctx, Command{Host: host, Shell: script, Stdin: cr, MaxOutput: 4096})
	res.Bytes, res.Duration = cr.n, time.Since(start)
	var ee *ExitError
	if errors.As(err, &ee) && ee.Code == pushExitMismatch {
		return res, fmt.Errorf("%w: %s: %s: %s", ErrChecksumMismatch, host, dst, strings.TrimSpace(string(ee.Stderr)))
	}
	return res, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
