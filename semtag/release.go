package semtag

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Release is a release of a tag on a forge: GitLab's Releases.
type Release struct {
	Tag   string
	Name  string // "" means the tag's name
	Notes string // Markdown
}

// Releaser is implemented by a Repo that hosts releases (GitLab does).
// Tagger uses it when Config.Release is set.
type Releaser interface {
	// Release returns the release of tag, or an error wrapping
	// ErrReleaseNotFound.
	Release(ctx context.Context, tag string) (Release, error)
	// CreateRelease creates the release of the existing tag rel.Tag. When
	// the tag has a release already, it changes nothing and returns an
	// error wrapping ErrReleaseExists.
	CreateRelease(ctx context.Context, rel Release) error
	// UpdateRelease replaces the name and notes of rel.Tag's release.
	UpdateRelease(ctx context.Context, rel Release) error
}

// FileCommitter is implemented by a Repo that can commit a file to a
// branch (GitLab does, through its API). Tagger uses it when
// Config.ChangelogFile is set.
type FileCommitter interface {
	// BranchFile returns the content of path at the head of branch and
	// a version for CommitFile, or an error wrapping fs.ErrNotExist when
	// there is no such file.
	BranchFile(ctx context.Context, branch, path string) (content []byte, version string, err error)
	// CommitFile writes content at path on branch in a new commit with
	// message, provided the file is still at version ("" means it must not
	// exist); otherwise it changes nothing and returns an error wrapping
	// ErrFileChanged.
	CommitFile(ctx context.Context, branch, path, version, message string, content []byte) error
}

var (
	// ErrReleaseExists is returned by Releaser.CreateRelease when the tag
	// has a release already.
	ErrReleaseExists = errors.New("semtag: release already exists")
	// ErrReleaseNotFound is returned by Releaser.Release when the tag has
	// no release.
	ErrReleaseNotFound = errors.New("semtag: release not found")
	// ErrFileChanged is returned by FileCommitter.CommitFile when the file
	// changed since it was read.
	ErrFileChanged = errors.New("semtag: file changed since it was read")
)

// MaxNotes is the size in bytes beyond which Run shortens the notes of a
// release: GitLab refuses descriptions over 1,000,000 characters.
const MaxNotes = 1_000_000

// publishing reports whether Run computes notes after tagging.
func (t *Tagger) publishing() bool { return t.cfg.Release || t.cfg.ChangelogFile != "" }

// publish computes the notes of the tag Run created or found on HEAD and,
// unless this is a dry run, publishes the release and the changelog.
func (t *Tagger) publish(ctx context.Context, res *Result) error {
	tag := res.Released
	if res.Created || (t.cfg.DryRun && res.Tag != "") {
		tag = res.Tag
	}
	if tag == "" {
		return nil
	}
	notes, err := Changelog(ctx, t.repo, t.cfg.Prefix, tag, res.Commit)
	if err != nil {
		return err
	}
	res.Notes = &notes
	if t.cfg.DryRun {
		return nil
	}
	if t.cfg.Release {
		if err := t.release(ctx, tag, notes, res); err != nil {
			return err
		}
	}
	if t.cfg.ChangelogFile != "" {
		return t.changelog(ctx, tag, notes, res)
	}
	return nil
}

// release creates the release of tag, or finds the one a racing or
// earlier pipeline created (GitLab answers 409, or 400 when both creates
// passed its first check) and leaves it, or updates its notes.
func (t *Tagger) release(ctx context.Context, tag string, notes Notes, res *Result) error {
	r := t.repo.(Releaser)
	rel := Release{Tag: tag, Name: tag, Notes: shorten(notes.Markdown(), MaxNotes)}
	err := r.CreateRelease(ctx, rel)
	if err == nil {
		res.ReleaseCreated = true
		t.log.Info("semtag: created release", "tag", tag, "changes", notes.Len())
		return nil
	}
	have, gerr := r.Release(ctx, tag)
	if gerr != nil {
		if errors.Is(gerr, ErrReleaseNotFound) {
			return fmt.Errorf("semtag: create release %s: %w", tag, err)
		}
		return fmt.Errorf("semtag: create release %s: %w; then reading it: %w", tag, err, gerr)
	}
	if !t.cfg.UpdateRelease || (have.Notes == rel.Notes && have.Name == rel.Name) {
		t.log.Info("semtag: release exists", "tag", tag)
		return nil
	}
	if err := r.UpdateRelease(ctx, rel); err != nil {
		return fmt.Errorf("semtag: update release %s: %w", tag, err)
	}
	res.ReleaseUpdated = true
	t.log.Info("semtag: updated release", "tag", tag, "changes", notes.Len())
	return nil
}

// changelog adds the notes to ChangelogFile on ChangelogBranch, once: a
// file that has the tag's section already is left alone, and a file that
// changed between read and commit is read again, at most MaxAttempts
// times.
func (t *Tagger) changelog(ctx context.Context, tag string, notes Notes, res *Result) error {
	fc := t.repo.(FileCommitter)
	msg := t.cfg.ChangelogMessage
	if msg == "" {
		msg = "chore(release): " + tag + " [skip ci]"
	}
	msg = strings.TrimRight(msg, "\n") + "\n\n" + ChangelogTrailer + ": " + tag + "\n"
	for attempt := 1; ; attempt++ {
		content, version, err := fc.BranchFile(ctx, t.cfg.ChangelogBranch, t.cfg.ChangelogFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("semtag: read %s: %w", t.cfg.ChangelogFile, err)
		}
		if err != nil {
			content, version = nil, ""
		}
		updated, changed := InsertChangelog(content, tag, notes.Markdown())
		if !changed {
			t.log.Info("semtag: changelog has the tag already", "tag", tag, "file", t.cfg.ChangelogFile)
			return nil
		}
		err = fc.CommitFile(ctx, t.cfg.ChangelogBranch, t.cfg.ChangelogFile, version, msg, updated)
		if err == nil {
			res.ChangelogUpdated = true
			t.log.Info("semtag: updated changelog", "tag", tag, "file", t.cfg.ChangelogFile, "branch", t.cfg.ChangelogBranch)
			return nil
		}
		if !errors.Is(err, ErrFileChanged) || attempt >= t.cfg.MaxAttempts {
			return fmt.Errorf("semtag: commit %s: %w", t.cfg.ChangelogFile, err)
		}
		t.log.Warn("semtag: changelog changed meanwhile", "file", t.cfg.ChangelogFile, "attempt", attempt)
	}
}

// changelogMarker opens the section of one tag in a changelog file.
func changelogMarker(tag string) string { return "<!-- semtag:" + tag + " -->" }

// InsertChangelog returns file with section (the Markdown of a tag's
// notes) inserted as the newest entry, after a hidden marker line for
// tag: before the first earlier section (a marker or a "## " heading),
// else at the end; an empty file gets a "# Changelog" title first. When
// file has tag's marker already, it returns file unchanged and false.
func InsertChangelog(file []byte, tag, section string) ([]byte, bool) {
	marker := changelogMarker(tag)
	for line := range bytes.Lines(file) {
		if string(bytes.TrimSpace(line)) == marker {
			return file, false
		}
	}
	entry := marker + "\n" + strings.TrimRight(section, "\n") + "\n"
	if len(bytes.TrimSpace(file)) == 0 {
		return []byte("# Changelog\n\n" + entry), true
	}
	at := -1
	off := 0
	for line := range bytes.Lines(file) {
		if bytes.HasPrefix(line, []byte("<!-- semtag:")) || bytes.HasPrefix(line, []byte("## ")) {
			at = off
			break
		}
		off += len(line)
	}
	var out bytes.Buffer
	if at < 0 {
		out.Write(bytes.TrimRight(file, "\n"))
		out.WriteString("\n\n" + entry)
		return out.Bytes(), true
	}
	out.Write(file[:at])
	out.WriteString(entry + "\n")
	out.Write(file[at:])
	return out.Bytes(), true
}

// shorten cuts s at a line end so that it fits in max bytes, saying so.
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const note = "\n\n… (shortened: the notes exceed the size GitLab accepts)\n"
	cut := s[:max-len(note)]
	if i := strings.LastIndexByte(cut, '\n'); i > 0 {
		cut = cut[:i]
	}
	return cut + note
}
