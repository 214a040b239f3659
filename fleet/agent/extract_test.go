package agent_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/fleet/agent"
)

// extractInto unpacks data into DIR/root and returns DIR (so tests can
// check that nothing appeared beside root) and the error.
func extractInto(t testing.TB, data []byte, lim agent.Limits) (string, error) {
	t.Helper()
	parent := t.TempDir()
	rootDir := filepath.Join(parent, "root")
	require.NoError(t, os.Mkdir(rootDir, 0o700))
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return parent, err
	}
	root, err := os.OpenRoot(rootDir)
	require.NoError(t, err)
	defer root.Close()
	return parent, agent.Extract(t.Context(), zr, root, lim)
}

// assertContained checks that parent holds only root, and that every
// symlink under root resolves inside it (after a successful extraction;
// a failed one is removed whole by the caller).
func assertContained(t testing.TB, parent string, extracted bool) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	require.NoError(t, err)
	for _, e := range ents {
		if e.Name() != "root" {
			t.Errorf("extraction wrote %q outside the root", e.Name())
		}
	}
	rootDir := filepath.Join(parent, "root")
	realRoot, err := filepath.EvalSymlinks(rootDir)
	require.NoError(t, err)
	filepath.WalkDir(rootDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			if real, err := filepath.EvalSymlinks(p); extracted && err == nil && !strings.HasPrefix(real+"/", realRoot+"/") {
				t.Errorf("symlink %s -> %s resolves to %s, outside the root", p, target, real)
			}
		} else if !d.IsDir() && !d.Type().IsRegular() {
			t.Errorf("%s is not a regular file (%v)", p, d.Type())
		}
		return nil
	})
}

func TestExtractGood(t *testing.T) {
	data := makeZip(t,
		entry{name: "bin/"},
		entry{name: "bin/app", body: []byte("#!prog"), mode: 0o4755},
		entry{name: "etc/app.conf", body: []byte("port=1")},
		entry{name: "etc/link.conf", body: []byte("app.conf"), mode: os.ModeSymlink | 0o777},
		entry{name: "share/doc/README", body: bytes.Repeat([]byte("hello "), 1000)},
	)
	parent, err := extractInto(t, data, agent.Limits{})
	require.NoError(t, err)
	assertContained(t, parent, true)
	root := filepath.Join(parent, "root")
	b, err := os.ReadFile(filepath.Join(root, "etc/link.conf"))
	require.NoError(t, err)
	assert.Equal(t, "port=1", string(b), "symlink inside the root works")
	st, err := os.Stat(filepath.Join(root, "bin/app"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm(), "setuid dropped, exec kept")
	assert.Zero(t, st.Mode()&os.ModeSetuid)
}

func TestExtractRefuses(t *testing.T) {
	zeros := make([]byte, 1<<20)
	random := make([]byte, 600<<10)
	rand.Read(random)
	tests := []struct {
		name    string
		entries []entry
		lim     agent.Limits
		want    error
	}{
		{"zip-slip dotdot", []entry{{name: "../../etc/cron.d/x", body: []byte("* * * * * root id")}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"zip-slip inner dotdot", []entry{{name: "a/../../x", body: []byte("x")}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"zip-slip dotdot dir", []entry{{name: "../d/"}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"absolute path", []entry{{name: "/tmp/agent-test-abs", body: []byte("x")}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"backslash", []entry{{name: "..\\..\\x", body: []byte("x")}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"symlink escape dotdot", []entry{{name: "link", body: []byte("../../etc"), mode: os.ModeSymlink | 0o777}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"symlink escape absolute", []entry{{name: "link", body: []byte("/etc"), mode: os.ModeSymlink | 0o777}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"symlink then write through it", []entry{
			{name: "link", body: []byte("/tmp"), mode: os.ModeSymlink | 0o777},
			{name: "link/evil", body: []byte("x")},
		}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"inside symlink used as a directory", []entry{
			{name: "d/"},
			{name: "link", body: []byte("d"), mode: os.ModeSymlink | 0o777},
			{name: "link/x", body: []byte("x")},
		}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"symlink escape through a dot link", []entry{
			{name: "x", body: []byte("."), mode: os.ModeSymlink | 0o777},
			{name: "a", body: []byte("x/../etc"), mode: os.ModeSymlink | 0o777},
		}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"dangling symlink", []entry{{name: "a", body: []byte("missing"), mode: os.ModeSymlink | 0o777}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"duplicate names", []entry{{name: "a", body: []byte("1")}, {name: "a", body: []byte("2")}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"file and directory of one name", []entry{{name: "a", body: []byte("1")}, {name: "a/"}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"block device", []entry{{name: "sda", mode: os.ModeDevice | 0o600}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"char device", []entry{{name: "null", mode: os.ModeDevice | os.ModeCharDevice | 0o666}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"named pipe", []entry{{name: "fifo", mode: os.ModeNamedPipe | 0o600}}, agent.Limits{}, agent.ErrUnsafeArchive},
		{"too many files", []entry{{name: "a"}, {name: "b"}, {name: "c"}}, agent.Limits{MaxFiles: 2}, agent.ErrUnsafeArchive},
		{"zip bomb ratio", []entry{{name: "zeros", body: zeros}}, agent.Limits{MaxRatio: 10}, agent.ErrZipBomb},
		{"zip bomb total", []entry{{name: "a", body: random}, {name: "b", body: random}}, agent.Limits{MaxUnpacked: 1 << 20}, agent.ErrZipBomb},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, err := extractInto(t, makeZip(t, tt.entries...), tt.lim)
			require.ErrorIs(t, err, tt.want)
			var ae *agent.ArchiveError
			require.ErrorAs(t, err, &ae)
			assertContained(t, parent, false)
		})
	}
	_, err := os.Lstat("/tmp/agent-test-abs")
	assert.ErrorIs(t, err, os.ErrNotExist, "the absolute entry was not written")
}

// TestExtractBombHeaderLies: the headers claim a small entry; the caps are
// counted on the bytes actually unpacked.
func TestExtractBombHeaderLies(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	// Recompress by hand through a raw entry.
	raw := deflate(t, make([]byte, 2<<20))
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "bomb", Method: zip.Deflate,
		CompressedSize64: uint64(len(raw)), UncompressedSize64: 2 << 20, CRC32: 0})
	require.NoError(t, err)
	w.Write(raw)
	require.NoError(t, zw.Close())

	parent, err := extractInto(t, buf.Bytes(), agent.Limits{MaxRatio: 10})
	require.ErrorIs(t, err, agent.ErrZipBomb)
	assertContained(t, parent, false)
	st, err := os.Stat(filepath.Join(parent, "root", "bomb"))
	require.NoError(t, err)
	assert.LessOrEqual(t, st.Size(), int64(len(raw))*10+(64<<10)+1, "stopped at the ratio cap while writing")
}

func TestExtractCorrupt(t *testing.T) {
	data := makeZip(t, entry{name: "a", body: bytes.Repeat([]byte("abc"), 10000)})
	// Flip bytes inside the compressed data (the local header is ~30+1 bytes).
	bad := bytes.Clone(data)
	for i := 40; i < 60; i++ {
		bad[i] ^= 0xff
	}
	parent, err := extractInto(t, bad, agent.Limits{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, agent.ErrBadArchive), "corrupt data is ErrBadArchive, got %v", err)
	assertContained(t, parent, false)
}

func deflate(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "x", Method: zip.Deflate})
	require.NoError(t, err)
	w.Write(b)
	require.NoError(t, zw.Close())
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	off, err := zr.File[0].DataOffset()
	require.NoError(t, err)
	return bytes.Clone(buf.Bytes()[off : off+int64(zr.File[0].CompressedSize64)])
}

func FuzzExtract(f *testing.F) {
	f.Add(makeZip(f, entry{name: "a/b", body: []byte("x")}, entry{name: "l", body: []byte("a/b"), mode: os.ModeSymlink | 0o777}))
	f.Add(makeZip(f, entry{name: "../x", body: []byte("x")}))
	f.Add(makeZip(f, entry{name: "l", body: []byte("../.."), mode: os.ModeSymlink | 0o777}, entry{name: "l/x"}))
	f.Add(makeZip(f, entry{name: "d/"}, entry{name: "d/e/f", body: bytes.Repeat([]byte{0}, 5000)}))
	f.Add(makeZip(f, entry{name: "a"}, entry{name: "a"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, err := extractInto(t, data, agent.Limits{MaxUnpacked: 1 << 20, MaxFiles: 100})
		assertContained(t, parent, err == nil)
	})
}

// BenchmarkExtract unpacks an 8 MiB package (incompressible data).
func BenchmarkExtract(b *testing.B) {
	data := make([]byte, 8<<20)
	rand.Read(data)
	z := makeZip(b, entry{name: "bin/app", body: []byte("x"), mode: 0o755}, entry{name: "data.bin", body: data})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dir := b.TempDir()
		zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
		require.NoError(b, err)
		root, err := os.OpenRoot(dir)
		require.NoError(b, err)
		require.NoError(b, agent.Extract(b.Context(), zr, root, agent.Limits{}))
		root.Close()
	}
}

// countDirs counts the directories under dir (dir itself excluded).
func countDirs(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != dir {
			n++
		}
		return nil
	})
	return n
}

// TestHardening06DeepImpliedDirectories: 20 entries 2000 levels deep (a
// ~160 KB zip) used to create 40,021 directories: the directories that file
// paths imply were counted nowhere. The archive is refused before anything
// is created.
func TestHardening06DeepImpliedDirectories(t *testing.T) {
	var entries []entry
	for i := range 20 {
		name := strings.Repeat(fmt.Sprintf("d%d/", i), 2000) + "f"
		entries = append(entries, entry{name: name, body: []byte("x")})
	}
	data := makeZip(t, entries...)
	parent, err := extractInto(t, data, agent.Limits{})
	require.ErrorIs(t, err, agent.ErrUnsafeArchive)
	var ae *agent.ArchiveError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, ae.Reason, "deep")
	assert.Zero(t, countDirs(t, filepath.Join(parent, "root")), "directories created for a refused archive")
}

// TestHardening06ImpliedDirectoriesCount: directories implied by file
// paths count against MaxFiles and are charged against MaxUnpacked, and
// over-long paths are refused, all before anything is written.
func TestHardening06ImpliedDirectoriesCount(t *testing.T) {
	deep := func(n int, prefix string) string { return strings.Repeat(prefix, n) + "f" }
	var wide []entry
	for i := range 30 {
		wide = append(wide, entry{name: fmt.Sprintf("d%02d/f", i)})
	}
	tests := []struct {
		name    string
		entries []entry
		lim     agent.Limits
		want    error
		reason  string
	}{
		// 1 entry, 21 implied directories.
		{"implied directories over MaxFiles", []entry{{name: deep(20, "a/"), body: []byte("x")}}, agent.Limits{MaxFiles: 10}, agent.ErrUnsafeArchive, "entries and directories"},
		// 30 empty files, 30 directories of agent.DirSize bytes each.
		{"directories charged against MaxUnpacked", wide, agent.Limits{MaxUnpacked: 20 * agent.DirSize}, agent.ErrZipBomb, "directories"},
		{"path too deep", []entry{{name: deep(agent.DefaultMaxDepth+1, "a/")}}, agent.Limits{}, agent.ErrUnsafeArchive, "deep"},
		{"path too long", []entry{{name: deep(10, strings.Repeat("n", 200)+"/")}}, agent.Limits{MaxPathLen: 1024}, agent.ErrUnsafeArchive, "long"},
		{"explicit deep directory", []entry{{name: deep(5, "a/") + "/"}}, agent.Limits{MaxDepth: 3}, agent.ErrUnsafeArchive, "deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, err := extractInto(t, makeZip(t, tt.entries...), tt.lim)
			require.ErrorIs(t, err, tt.want)
			var ae *agent.ArchiveError
			require.ErrorAs(t, err, &ae)
			assert.Contains(t, ae.Reason, tt.reason)
			assert.Zero(t, countDirs(t, filepath.Join(parent, "root")), "directories created for a refused archive")
		})
	}
	// Within the limits the same shapes unpack.
	parent, err := extractInto(t, makeZip(t, wide...), agent.Limits{MaxUnpacked: 30 * agent.DirSize, MaxFiles: 60})
	require.NoError(t, err)
	assert.Equal(t, 30, countDirs(t, filepath.Join(parent, "root")))
	_, err = extractInto(t, makeZip(t, entry{name: deep(agent.DefaultMaxDepth-1, "a/"), body: []byte("x")}), agent.Limits{})
	require.NoError(t, err, "a path of DefaultMaxDepth components unpacks")
}
