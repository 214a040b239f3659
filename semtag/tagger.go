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
}

// Tagger decides and creates the next version tag in a Repo. It holds no
// resources; it is safe for concurrent use if its Repo is.
type Tagger struct {
	repo Repo
	cfg  Config
	log  *slog.Logger
}

// NewTagger returns a Tagger over repo. It returns an error wrapping
// ErrBadPrefix or ErrBadBump for a bad Config.
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
func (t *Tagger) Run(ctx context.Context) (Result, error) {
	head, err := t.repo.Head(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("semtag: head: %w", err)
	}
	tags, err := t.repo.Tags(ctx, t.cfg.Prefix)
	if err != nil {
		return Result{}, fmt.Errorf("semtag: list tags: %w", err)
	}
	in := Input{Prefix: t.cfg.Prefix, Bump: t.cfg.Bump, AllowMajorMismatch: t.cfg.AllowMajorMismatch}
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
		if in.Bump == BumpConventional && Released(t.cfg.Prefix, in.HeadTags) == "" && byName[base] != commitsBase {
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
