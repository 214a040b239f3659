package agent

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Default unpack limits.
const (
	DefaultMaxUnpacked = 4 << 30 // 4 GiB in all
	DefaultMaxRatio    = 200     // uncompressed/compressed per entry
	DefaultMaxFiles    = 100_000
	DefaultMaxDepth    = 64   // path components of an entry name
	DefaultMaxPathLen  = 1024 // bytes of an entry name
	// DirSize is what each directory an archive creates (named or implied
	// by a file's path) is charged against MaxUnpacked: a file system
	// block, which is what an empty directory costs on disk.
	DirSize = 4096
	// ratioSlack lets tiny, highly compressible files through the ratio
	// cap: an entry may always unpack to this much.
	ratioSlack = 64 << 10
)

// Limits caps what an archive may unpack to. The zero value of each field
// selects the documented default.
type Limits struct {
	// MaxUnpacked caps the total bytes written, counted while writing
	// (the sizes in the zip headers are not trusted); 0 means
	// DefaultMaxUnpacked.
	MaxUnpacked int64
	// MaxRatio caps each entry's unpacked size to MaxRatio times its
	// compressed size (plus 1 MiB); 0 means DefaultMaxRatio.
	MaxRatio int64
	// MaxFiles caps the number of entries plus the directories their
	// paths imply ("a/b/c" implies "a" and "a/b"); 0 means
	// DefaultMaxFiles.
	MaxFiles int
	// MaxDepth caps the path components of an entry name; 0 means
	// DefaultMaxDepth.
	MaxDepth int
	// MaxPathLen caps the length in bytes of an entry name; 0 means
	// DefaultMaxPathLen.
	MaxPathLen int
}

func (l Limits) withDefaults() Limits {
	if l.MaxUnpacked <= 0 {
		l.MaxUnpacked = DefaultMaxUnpacked
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = DefaultMaxPathLen
	}
	return l
}

// Extract unpacks the zip r into root. Every write goes through root
// (os.Root), so no entry can reach outside it. It refuses, with an
// *ArchiveError:
//   - names that are absolute, contain "..", backslashes or NUL, or are
//     not clean ("a//b", "./a");
//   - two entries with the same name (or a file and a directory);
//   - device files, named pipes, sockets and other irregular files;
//   - symlinks whose target is absolute, leaves the root (checked both
//     lexically and, after unpacking, as the kernel resolves it) or does
//     not exist;
//   - names deeper than MaxDepth components or longer than MaxPathLen
//     bytes, and more than MaxFiles entries and directories (those the
//     names imply count too) (ErrUnsafeArchive), all before anything is
//     written;
//   - more than MaxUnpacked bytes in all (each directory is charged
//     DirSize) or an entry that unpacks to more than MaxRatio times its
//     compressed size (ErrZipBomb), counted while unpacking.
//
// A corrupt zip is ErrBadArchive. On error, what was already unpacked stays
// in root: unpack into a staging directory and remove it on error.
// Permissions keep only the owner's and others' read and execute bits and
// the owner's write bit; setuid, setgid and sticky bits are dropped.
func Extract(ctx context.Context, r *zip.Reader, root *os.Root, lim Limits) error {
	lim = lim.withDefaults()
	if len(r.File) > lim.MaxFiles {
		return &ArchiveError{Entry: "", Reason: fmt.Sprintf("more than %d entries", lim.MaxFiles), Err: ErrUnsafeArchive}
	}
	// First pass: names, kinds, duplicates, depth and the directories the
	// names imply, before anything is written.
	seen := make(map[string]bool, len(r.File))
	dirs := map[string]bool{}    // named as directories
	implied := map[string]bool{} // parents of some entry
	for _, f := range r.File {
		name, isDir, err := entryName(f)
		if err != nil {
			return err
		}
		switch {
		case strings.Count(name, "/")+1 > lim.MaxDepth:
			return &ArchiveError{Entry: shorten(f.Name), Reason: fmt.Sprintf("path deeper than %d components", lim.MaxDepth), Err: ErrUnsafeArchive}
		case len(name) > lim.MaxPathLen:
			return &ArchiveError{Entry: shorten(f.Name), Reason: fmt.Sprintf("name longer than %d bytes", lim.MaxPathLen), Err: ErrUnsafeArchive}
		case seen[name]:
			return &ArchiveError{Entry: f.Name, Reason: "duplicate name", Err: ErrUnsafeArchive}
		}
		seen[name] = true
		if isDir {
			dirs[name] = true
		}
		for d := path.Dir(name); d != "." && !implied[d]; d = path.Dir(d) {
			implied[d] = true
		}
		if n := len(seen) + len(implied); n > lim.MaxFiles {
			return &ArchiveError{Entry: f.Name, Reason: fmt.Sprintf("more than %d entries and directories", lim.MaxFiles), Err: ErrUnsafeArchive}
		}
	}
	// A file may not also be the parent of another entry.
	ndirs := int64(len(dirs))
	for d := range implied {
		if seen[d] && !dirs[d] {
			return &ArchiveError{Entry: d, Reason: "a file is also used as a directory", Err: ErrUnsafeArchive}
		}
		if !dirs[d] {
			ndirs++
		}
	}
	if ndirs*DirSize > lim.MaxUnpacked {
		return &ArchiveError{Entry: "", Reason: fmt.Sprintf("%d directories (charged %d bytes each) exceed the unpack cap", ndirs, DirSize), Err: ErrZipBomb}
	}
	total := ndirs * DirSize
	var links []string
	for _, f := range r.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		name, isDir, _ := entryName(f)
		mode := f.Mode()
		switch {
		case isDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("agent: unpack %q: %w", f.Name, err)
			}
		case mode&fs.ModeSymlink != 0:
			if err := extractSymlink(root, f, name); err != nil {
				return err
			}
			links = append(links, f.Name)
		default:
			n, err := extractFile(root, f, name, lim, lim.MaxUnpacked-total)
			total += n
			if err != nil {
				return err
			}
		}
	}
	return checkLinks(root, links)
}

// shorten cuts a long entry name for an error message.
func shorten(name string) string {
	if len(name) <= 256 {
		return name
	}
	return name[:256] + "..."
}

// checkLinks resolves every symlink the way the kernel will (a lexical
// check alone misses "x -> ." followed by "a -> x/../etc") and refuses
// one that leaves the root or dangles.
func checkLinks(root *os.Root, links []string) error {
	if len(links) == 0 {
		return nil
	}
	base, err := filepath.EvalSymlinks(root.Name())
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	for _, l := range links {
		real, err := filepath.EvalSymlinks(filepath.Join(base, filepath.FromSlash(strings.TrimSuffix(l, "/"))))
		if err != nil {
			return &ArchiveError{Entry: l, Reason: "symlink target does not exist in the archive", Err: ErrUnsafeArchive}
		}
		if real != base && !strings.HasPrefix(real, base+string(filepath.Separator)) {
			return &ArchiveError{Entry: l, Reason: "symlink escapes the root", Err: ErrUnsafeArchive}
		}
	}
	return nil
}

// entryName validates f's name and kind and returns the clean name.
func entryName(f *zip.File) (name string, isDir bool, err error) {
	bad := func(reason string) (string, bool, error) {
		return "", false, &ArchiveError{Entry: f.Name, Reason: reason, Err: ErrUnsafeArchive}
	}
	name = f.Name
	mode := f.Mode()
	isDir = strings.HasSuffix(name, "/") || mode.IsDir()
	name = strings.TrimSuffix(name, "/")
	switch {
	case name == "":
		return bad("empty name")
	case strings.ContainsAny(name, "\\\x00"):
		return bad("backslash or NUL in name")
	case path.IsAbs(name) || (len(name) > 1 && name[1] == ':'):
		return bad("absolute path")
	case path.Clean(name) != name:
		return bad("name is not clean")
	case name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || strings.HasSuffix(name, "/.."):
		return bad("path escapes the root")
	case !fs.ValidPath(name):
		return bad("invalid path")
	}
	if isDir && mode&fs.ModeSymlink != 0 {
		return bad("symlink named as a directory")
	}
	if mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0 {
		return bad("device file, pipe or socket")
	}
	return name, isDir, nil
}

// extractSymlink creates the symlink f if its target stays inside the root.
func extractSymlink(root *os.Root, f *zip.File, name string) error {
	bad := func(reason string) error {
		return &ArchiveError{Entry: f.Name, Reason: reason, Err: ErrUnsafeArchive}
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("%w: entry %q: %v", ErrBadArchive, f.Name, err)
	}
	defer rc.Close()
	buf, err := io.ReadAll(io.LimitReader(rc, 4097))
	if err != nil {
		return fmt.Errorf("%w: entry %q: %v", ErrBadArchive, f.Name, err)
	}
	target := string(buf)
	switch {
	case len(buf) > 4096 || target == "":
		return bad("symlink target empty or too long")
	case strings.ContainsAny(target, "\\\x00"):
		return bad("backslash or NUL in symlink target")
	case path.IsAbs(target):
		return bad("symlink to an absolute path")
	}
	// Resolve lexically from the link's directory; every symlink in the
	// archive is itself checked this way, so chains stay inside too.
	if !fs.ValidPath(path.Join(path.Dir(name), target)) || strings.HasPrefix(path.Join(path.Dir(name), target), "..") {
		return bad("symlink escapes the root")
	}
	if err := mkParent(root, name); err != nil {
		return fmt.Errorf("agent: unpack %q: %w", f.Name, err)
	}
	if err := root.Symlink(target, name); err != nil {
		return fmt.Errorf("agent: unpack %q: %w", f.Name, err)
	}
	return nil
}

// extractFile writes the regular file f, at most budget bytes, and returns
// the bytes written.
func extractFile(root *os.Root, f *zip.File, name string, lim Limits, budget int64) (int64, error) {
	if f.UncompressedSize64 > uint64(budget) {
		return 0, &ArchiveError{Entry: f.Name, Reason: "declared size exceeds the unpack cap", Err: ErrZipBomb}
	}
	// The ratio cap is on what is actually read, with the compressed size
	// from the header (which bounds what the decompressor is fed).
	ratioCap := int64(f.CompressedSize64)*lim.MaxRatio + ratioSlack
	if f.Method == zip.Store {
		ratioCap = int64(f.CompressedSize64)
	}
	entryCap := min(budget, ratioCap)
	if err := mkParent(root, name); err != nil {
		return 0, fmt.Errorf("agent: unpack %q: %w", f.Name, err)
	}
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("%w: entry %q: %v", ErrBadArchive, f.Name, err)
	}
	defer rc.Close()
	perm := f.Mode().Perm() & 0o755
	if perm&0o600 != 0o600 {
		perm |= 0o600
	}
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, fmt.Errorf("agent: unpack %q: %w", f.Name, err)
	}
	n, err := io.Copy(out, io.LimitReader(taggedReader{rc}, entryCap+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	switch {
	case n > entryCap && entryCap == budget:
		return n, &ArchiveError{Entry: f.Name, Reason: "unpacks past the total size cap", Err: ErrZipBomb}
	case n > entryCap:
		return n, &ArchiveError{Entry: f.Name, Reason: "compression ratio above the cap", Err: ErrZipBomb}
	case errors.As(err, new(readError)):
		return n, fmt.Errorf("%w: entry %q: %v", ErrBadArchive, f.Name, err)
	case err != nil:
		return n, fmt.Errorf("agent: unpack %q: %w", f.Name, err)
	}
	return n, nil
}

func mkParent(root *os.Root, name string) error {
	if d := path.Dir(name); d != "." {
		return root.MkdirAll(d, 0o755)
	}
	return nil
}

// readError marks an error of the zip entry's reader (corrupt or truncated
// data), as opposed to one writing the file.
type readError struct{ error }

func (e readError) Unwrap() error { return e.error }

type taggedReader struct{ r io.Reader }

func (t taggedReader) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if err != nil && err != io.EOF {
		err = readError{err}
	}
	return n, err
}
