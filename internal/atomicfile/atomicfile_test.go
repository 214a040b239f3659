package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCommitReplaces(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "f")
	if err := os.WriteFile(dst, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(dst, []byte("new"), 0o600); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	got, _ := os.ReadFile(dst)
	if string(got) != "new" {
		t.Errorf("content after WriteFile = %q; want %q", got, "new")
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v; want 0600", fi.Mode().Perm())
	}
	assertOnly(t, dir, "f")
}

func TestAbortLeavesOldContentAndNoTemp(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "f")
	os.WriteFile(dst, []byte("old"), 0o644)
	f, err := Create(dst, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half"))
	f.Abort()
	f.Abort() // idempotent
	got, _ := os.ReadFile(dst)
	if string(got) != "old" {
		t.Errorf("content after Abort = %q; want old content", got)
	}
	assertOnly(t, dir, "f")
	if err := f.Commit(); err == nil {
		t.Error("Commit after Abort succeeded; want error")
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(names) {
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		t.Fatalf("dir holds %v; want only %v", got, names)
	}
}
