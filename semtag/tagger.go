package semtag

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"golang.org/x/mod/semver"
)

// Tag is one tag of a repository.
type Tag struct {
	Name   string
	Commit string // SHA of the commit the tag points at (peeled, for annotated tags)
}

// Repo is what a Tagger needs from a repository. Git (a local clone, with
// the real git binary) and GitLab (the REST API) implement it; users may
// implement it for other hosts.
type Repo interface {
	// Head returns the SHA of the commit to release.
	Head(ctx context.Context) (string, error)
	// Tags returns at least every tag whose name starts with prefix + "v"
	// (every possible version tag for prefix). It may return other tags
	// too; the Tagger ignores them.
	Tags(ctx context.Context, prefix string) ([]Tag, error)
	// Tag returns the tag called name, or an error wrapping ErrTagNotFound.
	Tag(ctx context.Context, name string) (Tag, error)
	// Commits returns the commits reachable from head and not from base
	// ("" means from the root) that touch dir ("" means the whole
	// repository), newest first.
	Commits(ctx context.Context, base, head, dir string) ([]Commit, error)
	// ReadFile returns the content of the file at path (slash-separated,
	// from the repository root) in commit, or an error wrapping
	// fs.ErrNotExist when there is no such file.
	ReadFile(ctx context.Context, commit, path string) ([]byte, error)
	// CreateTag creates the annotated tag name on commit. If a tag of that
	// name exists already, it returns an error wrapping ErrTagExists.
	CreateTag(ctx context.Context, name, commit, message string) error
}

var (
	// ErrTagExists is returned by Repo.CreateTag when the tag exists already.
	ErrTagExists = errors.New("semtag: tag already exists")
	// ErrTagNotFound is returned by Repo.Tag for a tag that does not exist.
	ErrTagNotFound = errors.New("semtag: tag not found")
	// ErrRace is returned by Tagger.Run when other pipelines took the next
	// version on other commits on every attempt.
	ErrRace = errors.New("semtag: gave up: other pipelines kept creating the next tag")
)

// Config configures a Tagger. The zero value of each field selects the
// documented default.
type Config struct {
	// Prefix is P: "" for a root module, "tools/" for the module in tools/.
	Prefix string
	// Bump is the bump mode; "" means BumpPatch.
	Bump Bump
	// Message is the annotation of the created tag; "" means "Release <tag>".
	Message string
	// DryRun decides the tag without creating it.
	DryRun bool
	// AllowMajorMismatch skips the go.mod check of rule 7.
	AllowMajorMismatch bool
	// MaxAttempts bounds how often Run recomputes the version after
	// another pipeline created it on another commit; 0 means 5.
	MaxAttempts int
	// Logger receives one event per decision and per conflict; nil discards.
	Logger *slog.Logger

	// Pre, when set (e.g. "rc"), makes Run create pre-releases:
	// vX.Y.Z-rc.1, then rc.2, ... (rule 8). A later run without Pre
	// finalizes vX.Y.Z as usual.
	Pre string
	// Release makes Run publish a release of the tag it created (or found
	// on HEAD, so that a re-run completes an interrupted one) with the
	// tag's notes (see Changelog). It needs a Repo that implements
	// Releaser, such as GitLab. An existing release is left as is.
	Release bool
	// UpdateRelease makes Run replace the name and notes of an existing
	// release when they differ from what it would write.
	UpdateRelease bool
	// ChangelogFile, when set (e.g. "CHANGELOG.md" or, for a module in
	// tools/, "tools/CHANGELOG.md"; slash-separated from the repository
	// root), makes Run add the tag's notes to that file on ChangelogBranch
	// with a commit, once per tag. It needs a Repo that implements
	// FileCommitter, such as GitLab.
	ChangelogFile string
	// ChangelogBranch is the branch the changelog commit goes to; required
	// with ChangelogFile. In GitLab CI: CI_COMMIT_BRANCH.
	ChangelogBranch string
	// ChangelogMessage is the message of the changelog commit; "" means
	// "chore(release): <tag> [skip ci]", which keeps the commit from
	// starting a pipeline. Run adds the ChangelogTrailer to it.
	ChangelogMessage string
}

// Tagger decides and creates the next version tag in a Repo. It holds no
// resources; it is safe for concurrent use if its Repo is.
type Tagger struct {
	repo Repo
	cfg  Config
	log  *slog.Logger
}

// NewTagger returns a Tagger over repo. It returns an error wrapping
// ErrBadPrefix, ErrBadBump or ErrBadPre for a bad Config, and one
// wrapping errors.ErrUnsupported when Config asks for a release or a
// changelog commit that repo cannot make.
func NewTagger(repo Repo, cfg Config) (*Tagger, error) {
	if repo == nil {
		return nil, errors.New("semtag: nil Repo")
	}
	if err := CheckPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.Bump == "" {
		cfg.Bump = BumpPatch
	}
	if _, err := ParseBump(string(cfg.Bump)); err != nil {
		return nil, err
	}
	if err := CheckPre(cfg.Pre); err != nil {
		return nil, err
	}
	if _, ok := repo.(Releaser); cfg.Release && !ok {
		return nil, fmt.Errorf("semtag: Config.Release: a %T cannot publish releases: %w", repo, errors.ErrUnsupported)
	}
	if cfg.ChangelogFile != "" {
		if _, ok := repo.(FileCommitter); !ok {
			return nil, fmt.Errorf("semtag: Config.ChangelogFile: a %T cannot commit files: %w", repo, errors.ErrUnsupported)
		}
		if cfg.ChangelogBranch == "" {
			return nil, errors.New("semtag: Config.ChangelogBranch is required with ChangelogFile")
		}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tagger{repo: repo, cfg: cfg, log: log}, nil
}

// Result is what Run did.
type Result struct {
	Decision
	// Commit is the SHA of the released commit (HEAD).
	Commit string
	// Created reports whether Run created Tag. It is false for a dry run
	// and when there was nothing to create.
	Created bool
	// Attempts counts the tag creations tried (0 for a dry run or a no-op).
	Attempts int
	// Notes are the release notes of Tag (or, when HEAD was released
	// already, of Released). Run computes them only when Config asks for
	// a release or a changelog, dry runs included.
	Notes *Notes
	// ReleaseCreated and ReleaseUpdated report what Run did to the
	// release (Config.Release); both are false when a release existed.
	ReleaseCreated, ReleaseUpdated bool
	// ChangelogUpdated reports a changelog commit (Config.ChangelogFile).
	ChangelogUpdated bool
}

// Run decides the next version (see Next) and creates its tag on HEAD,
// unless the Config asks for a dry run.
//
// When HEAD already carries a release for the prefix, including one that
// a racing pipeline created for the same commit while Run was deciding,
// Result.Released names it and nothing is created. When another pipeline
// created the chosen tag on another commit, Run recomputes with that tag
// known and tries again, at most Config.MaxAttempts times, then returns an
// error wrapping ErrRace. Errors from Next and from the Repo come back
// wrapped.
//
// With Config.Release or Config.ChangelogFile, Run then computes the
// notes of that tag (the created one, or Released, so that a re-run
// completes what an interrupted run left) and publishes them, unless this
// is a dry run. Publishing is idempotent: an existing release is found
// and left (or updated), never duplicated, also when a racing pipeline
// creates it first; the changelog gets one section per tag. When
// publishing fails, the tag stays and the error says what failed.
func (t *Tagger) Run(ctx context.Context) (Result, error) {
	res, err := t.tag(ctx)
	if err != nil || !t.publishing() {
		return res, err
	}
	return res, t.publish(ctx, &res)
}

// tag decides and creates the tag: Run without the publishing.
func (t *Tagger) tag(ctx context.Context) (Result, error) {
	head, err := t.repo.Head(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("semtag: head: %w", err)
	}
	tags, err := t.repo.Tags(ctx, t.cfg.Prefix)
	if err != nil {
		return Result{}, fmt.Errorf("semtag: list tags: %w", err)
	}
	in := Input{Prefix: t.cfg.Prefix, Bump: t.cfg.Bump, AllowMajorMismatch: t.cfg.AllowMajorMismatch, Pre: t.cfg.Pre}
	byName := make(map[string]string, len(tags)) // tag name → commit
	add := func(tg Tag) {
		if _, ok := byName[tg.Name]; ok {
			return
		}
		byName[tg.Name] = tg.Commit
		in.Tags = append(in.Tags, tg.Name)
		if tg.Commit == head {
			in.HeadTags = append(in.HeadTags, tg.Name)
		}
	}
	for _, tg := range tags {
		if strings.HasPrefix(tg.Name, t.cfg.Prefix) {
			add(tg)
		}
	}
	res := Result{Commit: head}
	commitsBase := "\x00" // base commit the fetched in.Commits start at
	goModRead := false
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		base, _ := Base(t.cfg.Prefix, in.Tags)
		if in.Bump == BumpConventional && releasedOn(t.cfg.Prefix, t.cfg.Pre, in.HeadTags) == "" && byName[base] != commitsBase {
			commitsBase = byName[base]
			in.Commits, err = t.repo.Commits(ctx, commitsBase, head, strings.TrimSuffix(t.cfg.Prefix, "/"))
			if err != nil {
				return res, fmt.Errorf("semtag: commits since %q: %w", base, err)
			}
		}
		d, err := Next(in)
		if err == nil && !goModRead && !in.AllowMajorMismatch && d.Tag != "" && semver.Major(d.Version) != "v0" && semver.Major(d.Version) != "v1" {
			// Rule 7 needs go.mod only for v2 and later: read it lazily.
			goModRead = true
			mod, rerr := t.repo.ReadFile(ctx, head, t.cfg.Prefix+"go.mod")
			switch {
			case errors.Is(rerr, fs.ErrNotExist):
			case rerr != nil:
				return res, fmt.Errorf("semtag: read %sgo.mod: %w", t.cfg.Prefix, rerr)
			default:
				in.GoMod = mod
				d, err = Next(in)
			}
		}
		if err != nil {
			return res, err
		}
		res.Decision = d
		if d.Tag == "" {
			t.log.Info("semtag: nothing to tag", "commit", head, "released", d.Released, "base", d.Base, "level", d.Level.String())
			return res, nil
		}
		if t.cfg.DryRun {
			t.log.Info("semtag: dry run", "commit", head, "tag", d.Tag, "base", d.Base, "level", d.Level.String())
			return res, nil
		}
		if res.Attempts >= t.cfg.MaxAttempts {
			return res, fmt.Errorf("%w (%d attempts, last %s)", ErrRace, res.Attempts, d.Tag)
		}
		res.Attempts++
		msg := t.cfg.Message
		if msg == "" {
			msg = "Release " + d.Tag
		}
		err = t.repo.CreateTag(ctx, d.Tag, head, msg)
		if err == nil {
			res.Created = true
			t.log.Info("semtag: created tag", "commit", head, "tag", d.Tag, "base", d.Base, "level", d.Level.String(), "attempt", res.Attempts)
			return res, nil
		}
		if !errors.Is(err, ErrTagExists) {
			return res, fmt.Errorf("semtag: create %s: %w", d.Tag, err)
		}
		other, err := t.repo.Tag(ctx, d.Tag)
		if err != nil {
			return res, fmt.Errorf("semtag: %s exists but cannot be read: %w", d.Tag, err)
		}
		t.log.Warn("semtag: tag created concurrently", "tag", d.Tag, "its_commit", other.Commit, "commit", head, "attempt", res.Attempts)
		add(other)
	}
}
