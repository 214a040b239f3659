package semtag

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"

	gitlab "gitlab.com/gitlab-org/api/client-go"
	"golang.org/x/sync/errgroup"
)

// GitLabConfig configures a GitLab repository backend.
type GitLabConfig struct {
	// Project is the project's numeric ID (int or int64) or its path
	// ("group/name"). Required. In GitLab CI: CI_PROJECT_ID.
	Project any
	// Commit is the commit to release: a full SHA, or a branch or tag name
	// that is resolved once with the commits API. Required. In GitLab CI:
	// CI_COMMIT_SHA, so that the tag lands on the commit the pipeline
	// tested even when the branch has moved on.
	Commit string
	// PerPage is the page size of the list calls; 0 means 100 (GitLab's maximum).
	PerPage int64
	// Concurrency is how many pages of tags are fetched at once once the
	// first page has told how many there are (X-Total-Pages); 0 means 4,
	// 1 fetches them one after another. Each page is fetched once.
	Concurrency int
	// Logger receives one debug event per page; nil discards.
	Logger *slog.Logger
}

// GitLab is a Repo over GitLab's REST API (tags, commits and repository
// files), through client-go. The token needs the api scope: the CI job
// token (CI_JOB_TOKEN) cannot create tags, so use a project access token.
// GitLab holds no resources beyond its client.
type GitLab struct {
	client *gitlab.Client
	cfg    GitLabConfig
	log    *slog.Logger
	calls  atomic.Int64
}

// NewGitLab returns a Repo over the GitLab project cfg.Project, using
// client (see gitlab.NewClient). It makes no API call.
func NewGitLab(client *gitlab.Client, cfg GitLabConfig) (*GitLab, error) {
	if client == nil {
		return nil, errors.New("semtag: nil GitLab client")
	}
	switch p := cfg.Project.(type) {
	case int, int64:
	case string:
		if p == "" {
			return nil, errors.New("semtag: GitLabConfig.Project is required")
		}
	default:
		return nil, fmt.Errorf("semtag: GitLabConfig.Project is a %T; want an int, int64 or string", cfg.Project)
	}
	if cfg.Commit == "" {
		return nil, errors.New("semtag: GitLabConfig.Commit is required")
	}
	if cfg.PerPage <= 0 || cfg.PerPage > 100 {
		cfg.PerPage = 100
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &GitLab{client: client, cfg: cfg, log: log}, nil
}

// APICalls returns how many API requests this GitLab has made (not
// counting client-go's own retries of failed requests).
func (g *GitLab) APICalls() int64 { return g.calls.Load() }

var fullSHA = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// Head returns Commit when it is a full SHA, or resolves it.
func (g *GitLab) Head(ctx context.Context) (string, error) {
	if fullSHA.MatchString(g.cfg.Commit) {
		return g.cfg.Commit, nil
	}
	g.calls.Add(1)
	c, _, err := g.client.Commits.GetCommit(g.cfg.Project, g.cfg.Commit, nil, gitlab.WithContext(ctx))
	if err != nil {
		return "", g.wrap(ctx, err)
	}
	return c.ID, nil
}

// Tags lists every page of the project's tags whose names start with
// prefix + "v" (search=^Pv), ordered by name, fetching each page exactly
// once, up to Concurrency pages at a time. The version order is not asked
// of the API: GitLab's order_by=version is git's version sort, which
// misorders pre-releases, so the Tagger orders by SemVer itself.
func (g *GitLab) Tags(ctx context.Context, prefix string) ([]Tag, error) {
	opt := gitlab.ListTagsOptions{
		ListOptions: gitlab.ListOptions{PerPage: g.cfg.PerPage},
		Search:      gitlab.Ptr("^" + prefix + "v"),
		// A total order (names are unique) keeps offset pages consistent;
		// the default, by commit date, has ties that may reorder between
		// requests and so skip or repeat tags across pages.
		OrderBy: gitlab.Ptr("name"),
		Sort:    gitlab.Ptr("asc"),
	}
	return collect(ctx, g, g.cfg.Concurrency, func(ctx context.Context, page int64) ([]Tag, *gitlab.Response, error) {
		o := opt
		o.Page = page
		list, resp, err := g.client.Tags.ListTags(g.cfg.Project, &o, gitlab.WithContext(ctx))
		tags := make([]Tag, 0, len(list))
		for _, t := range list {
			tags = append(tags, tagOf(t))
		}
		return tags, resp, err
	})
}

// collect fetches page 1 and then every further page exactly once. When
// the first answer tells the number of pages (X-Total-Pages, which the
// commits API leaves out), up to conc pages are fetched at once;
// otherwise it follows X-Next-Page. It refuses to fetch a page twice,
// whatever the headers say.
func collect[T any](ctx context.Context, g *GitLab, conc int, fetch func(ctx context.Context, page int64) ([]T, *gitlab.Response, error)) ([]T, error) {
	get := func(ctx context.Context, page int64) ([]T, *gitlab.Response, error) {
		g.calls.Add(1)
		items, resp, err := fetch(ctx, page)
		if err != nil {
			return nil, nil, g.wrap(ctx, err)
		}
		g.log.Debug("semtag: page", "page", page, "next", resp.NextPage, "total_pages", resp.TotalPages)
		return items, resp, nil
	}
	all, resp, err := get(ctx, 1)
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{1: true}
	// The bound keeps a nonsensical X-Total-Pages from sizing memory; such
	// listings are followed page by page instead.
	if conc > 1 && resp.NextPage == 2 && resp.TotalPages > 2 && resp.TotalPages <= 1<<16 {
		rest := make([][]T, resp.TotalPages-1)
		var last *gitlab.Response
		eg, ectx := errgroup.WithContext(ctx)
		eg.SetLimit(conc)
		for p := int64(2); p <= resp.TotalPages; p++ {
			seen[p] = true
			eg.Go(func() error {
				items, r, err := get(ectx, p)
				rest[p-2] = items
				if p == int64(len(rest))+1 {
					last = r
				}
				return err
			})
		}
		if err := eg.Wait(); err != nil {
			if ctx.Err() != nil {
				return nil, g.wrap(ctx, ctx.Err())
			}
			return nil, err
		}
		for _, items := range rest {
			all = append(all, items...)
		}
		resp = last // pages may have grown meanwhile: go on from its X-Next-Page
	}
	for resp.NextPage != 0 {
		page := resp.NextPage
		if seen[page] {
			return nil, fmt.Errorf("semtag: GitLab announced page %d again", page)
		}
		seen[page] = true
		var items []T
		if items, resp, err = get(ctx, page); err != nil {
			return nil, err
		}
		all = append(all, items...)
	}
	return all, nil
}

func tagOf(t *gitlab.Tag) Tag {
	tg := Tag{Name: t.Name, Commit: t.Target}
	if t.Commit != nil && t.Commit.ID != "" {
		tg.Commit = t.Commit.ID // annotated tags: Target is the tag object
	}
	return tg
}

// Tag reads one tag.
func (g *GitLab) Tag(ctx context.Context, name string) (Tag, error) {
	g.calls.Add(1)
	t, _, err := g.client.Tags.GetTag(g.cfg.Project, name, gitlab.WithContext(ctx))
	if errors.Is(err, gitlab.ErrNotFound) {
		return Tag{}, fmt.Errorf("%w: %s", ErrTagNotFound, name)
	}
	if err != nil {
		return Tag{}, g.wrap(ctx, err)
	}
	return tagOf(t), nil
}

// Commits lists the commits of the range base..head (or all of head's
// history when base is ""), limited to dir, through every page.
func (g *GitLab) Commits(ctx context.Context, base, head, dir string) ([]Commit, error) {
	ref := head
	if base != "" {
		ref = base + ".." + head
	}
	opt := gitlab.ListCommitsOptions{
		ListOptions: gitlab.ListOptions{PerPage: g.cfg.PerPage},
		RefName:     gitlab.Ptr(ref),
	}
	if dir != "" {
		opt.Path = gitlab.Ptr(dir)
	}
	return collect(ctx, g, 1, func(ctx context.Context, page int64) ([]Commit, *gitlab.Response, error) {
		o := opt
		o.Page = page
		list, resp, err := g.client.Commits.ListCommits(g.cfg.Project, &o, gitlab.WithContext(ctx))
		cs := make([]Commit, 0, len(list))
		for _, c := range list {
			cs = append(cs, Commit{SHA: c.ID, Message: c.Message, Parents: c.ParentIDs})
		}
		return cs, resp, err
	})
}

// ReadFile reads a raw file at commit.
func (g *GitLab) ReadFile(ctx context.Context, commit, path string) ([]byte, error) {
	g.calls.Add(1)
	b, _, err := g.client.RepositoryFiles.GetRawFile(g.cfg.Project, path, &gitlab.GetRawFileOptions{Ref: gitlab.Ptr(commit)}, gitlab.WithContext(ctx))
	if errors.Is(err, gitlab.ErrNotFound) {
		return nil, fmt.Errorf("semtag: %s at %s: %w", path, commit, fs.ErrNotExist)
	}
	if err != nil {
		return nil, g.wrap(ctx, err)
	}
	return b, nil
}

// ErrTagProtected is returned (wrapped) by GitLab.CreateTag and so by
// Tagger.Run when GitLab refuses the tag because it matches a protected tag
// pattern that the token's user is not allowed to create, or refuses the
// token altogether (403). Retrying does not help: allow the user to create
// the tags (Settings > Repository > Protected tags) or use another token.
var ErrTagProtected = errors.New("semtag: not allowed to create the tag")

// CreateTag creates an annotated tag on the exact commit SHA. GitLab's
// answer to an existing name (400 "Tag vX already exists"; its docs say
// 405) becomes ErrTagExists; its refusal of a protected tag (400 "You are
// not allowed to create this tag as it is protected.", from
// Gitlab::Checks::TagCheck) or of the token (403) becomes ErrTagProtected. client-go may retry the POST after a 5xx or
// 429; that is safe here, because a retry that finds our own tag ends in
// ErrTagExists and the Tagger then sees the tag on our commit.
func (g *GitLab) CreateTag(ctx context.Context, name, commit, message string) error {
	g.calls.Add(1)
	_, _, err := g.client.Tags.CreateTag(g.cfg.Project, &gitlab.CreateTagOptions{
		TagName: gitlab.Ptr(name),
		Ref:     gitlab.Ptr(commit),
		Message: gitlab.Ptr(message),
	}, gitlab.WithContext(ctx))
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		exists := strings.Contains(er.Message, "already exists") || strings.Contains(string(er.Body), "already exists")
		switch er.Response.StatusCode {
		case http.StatusMethodNotAllowed: // the documented answer, whatever its text
			return fmt.Errorf("%w: %s (%d)", ErrTagExists, name, er.Response.StatusCode)
		case http.StatusBadRequest, http.StatusConflict: // what GitLab really answers
			if exists {
				return fmt.Errorf("%w: %s (%d)", ErrTagExists, name, er.Response.StatusCode)
			}
			if strings.Contains(er.Message, "protected") {
				return fmt.Errorf("%w: %s matches a protected tag pattern the token's user may not create (GitLab: %s); "+
					"allow the user under Settings > Repository > Protected tags or use another token", ErrTagProtected, name, er.Message)
			}
		case http.StatusForbidden:
			return fmt.Errorf("%w: %s: GitLab refused the token (%s)", ErrTagProtected, name, er.Message)
		}
	}
	if err != nil {
		return g.wrap(ctx, err)
	}
	return nil
}

// wrap makes a cancelled request report the context's error.
func (g *GitLab) wrap(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("semtag: gitlab: %w (%v)", ctx.Err(), err)
	}
	return fmt.Errorf("semtag: gitlab: %w", err)
}
