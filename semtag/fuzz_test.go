package semtag_test

import (
	"strings"
	"testing"

	"golang.org/x/mod/semver"

	"github.com/opskit/opskit/semtag"
)

// FuzzNext checks Next against golang.org/x/mod/semver's ordering: the base
// is a maximum by semver.Compare, and the next version is a full release
// above every release (and, when there is none, above every pre-release),
// never an existing version.
func FuzzNext(f *testing.F) {
	f.Add("v1.0.0\nv1.1.0-rc.1\nv1.0.1+build.7\nv1.02.3\nv1.2", "", uint8(0))
	f.Add("tools/v1.2.3\ntools/sub/v9.0.0\nv3.0.0", "tools/", uint8(1))
	f.Add("v0.0.0-20200101000000-abcdefabcdef\nv2.0.0-beta\nv2.0.0-alpha.1", "", uint8(2))
	f.Add("v1.2.99999999999999999999\nv1.2.3+zzz", "", uint8(0))
	f.Add("v0.0.0-rc.1", "", uint8(1))
	f.Fuzz(func(t *testing.T, tagList, prefix string, bumpSel uint8) {
		if semtag.CheckPrefix(prefix) != nil {
			prefix = ""
		}
		bump := []semtag.Bump{semtag.BumpPatch, semtag.BumpMinor, semtag.BumpMajor}[int(bumpSel)%3]
		tags := strings.Split(tagList, "\n")
		d, err := semtag.Next(semtag.Input{Prefix: prefix, Tags: tags, Bump: bump})
		if err != nil {
			t.Fatalf("Next(%q, %q, %s) = %v", prefix, tags, bump, err)
		}
		v, ok := semtag.Parse(prefix, d.Tag)
		if !ok || semver.Prerelease(v) != "" || semver.Build(v) != "" || v != d.Version {
			t.Fatalf("Next(%q, %q) made %q (version %q); want prefix + plain vX.Y.Z", prefix, tags, d.Tag, d.Version)
		}
		hasRelease := false
		for _, tag := range tags {
			if tv, ok := semtag.Parse(prefix, tag); ok && semver.Prerelease(tv) == "" {
				hasRelease = true
			}
		}
		for _, tag := range tags {
			tv, ok := semtag.Parse(prefix, tag)
			if !ok {
				continue
			}
			if tag == d.Tag {
				t.Fatalf("Next(%q, %q) = %q, which already exists", prefix, tags, d.Tag)
			}
			if semver.Compare(tv, d.BaseVersion) > 0 && (semver.Prerelease(tv) == "" || !hasRelease) {
				t.Fatalf("Next(%q, %q): base %q is below %q", prefix, tags, d.Base, tag)
			}
			if (semver.Prerelease(tv) == "" || !hasRelease) && semver.Compare(d.Version, tv) <= 0 {
				t.Fatalf("Next(%q, %q, %s) = %q, not above %q", prefix, tags, bump, d.Tag, tag)
			}
		}
		if semver.Compare(d.Version, d.BaseVersion) <= 0 {
			t.Fatalf("Next(%q, %q) = %q, not above base %q", prefix, tags, d.Tag, d.BaseVersion)
		}
	})
}

// FuzzCommitLevel checks invariants of the conventional-commit parser: a
// message whose header is not conventional gives nothing whatever its body,
// the type's case does not matter, and a BREAKING CHANGE footer under a
// releasing header always gives major.
func FuzzCommitLevel(f *testing.F) {
	for _, s := range []string{"fix: x", "feat(api)!: y", "docs: z\n\nBREAKING CHANGE: w", "Merge branch 'a'", "fix:x", "feat(): x", "chore!: a\r\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		l := semtag.CommitLevel(msg)
		if l < semtag.LevelNone || l > semtag.LevelMajor {
			t.Fatalf("CommitLevel(%q) = %d", msg, l)
		}
		header, _, _ := strings.Cut(msg, "\n")
		if !strings.Contains(header, ": ") && l != semtag.LevelNone {
			t.Fatalf("CommitLevel(%q) = %s; the header has no \": \"", msg, l)
		}
		if swapped := swapTypeCase(msg); semtag.CommitLevel(swapped) != l {
			t.Fatalf("CommitLevel(%q) = %s but CommitLevel(%q) = %s", msg, l, swapped, semtag.CommitLevel(swapped))
		}
		if semtag.CommitLevel(header) != semtag.LevelNone {
			withFooter := header + "\n\nBREAKING CHANGE: gone"
			if got := semtag.CommitLevel(withFooter); got != semtag.LevelMajor {
				t.Fatalf("CommitLevel(%q) = %s; want major", withFooter, got)
			}
		}
	})
}

// swapTypeCase swaps the case of the ASCII letters before the first '(',
// '!' or ':' (the type).
func swapTypeCase(msg string) string {
	b := []byte(msg)
	for i, c := range b {
		switch {
		case c == '(' || c == '!' || c == ':' || c == '\n':
			return string(b)
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// FuzzNotes checks that any commit messages give notes that list every
// non-merge commit once and whose Markdown opens no HTML: no unescaped
// "<" from commit text.
func FuzzNotes(f *testing.F) {
	f.Add("feat(x)!: a\n\nBREAKING CHANGE: b\nc", "fix: <!-- opskit:marker -->\n\nSee merge request g/p!1", "Merge branch 'a' into 'b'")
	f.Add("", "\n\n", "BREAKING CHANGE: not a header")
	f.Fuzz(func(t *testing.T, m1, m2, m3 string) {
		commits := []semtag.Commit{
			{SHA: strings.Repeat("3", 40), Message: m3, Parents: []string{strings.Repeat("2", 40)}},
			{SHA: strings.Repeat("2", 40), Message: m2, Parents: []string{strings.Repeat("1", 40)}},
			{SHA: strings.Repeat("1", 40), Message: m1},
		}
		n := semtag.NewNotes("v1.0.0", "v0.9.0", commits)
		want := 0
		for _, m := range []string{m1, m2, m3} {
			if !strings.Contains(m, "\n"+semtag.ChangelogTrailer+": ") && !strings.HasPrefix(m, semtag.ChangelogTrailer+": ") {
				want++
			}
		}
		if n.Len() != want {
			t.Fatalf("NewNotes(%q, %q, %q) lists %d changes; want %d", m1, m2, m3, n.Len(), want)
		}
		if md := strings.ReplaceAll(n.Markdown(), `\<`, ""); strings.Contains(md, "<") {
			t.Fatalf("Markdown of %q, %q, %q has an unescaped <:\n%s", m1, m2, m3, md)
		}
	})
}
