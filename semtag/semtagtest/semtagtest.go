package semtagtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opskit/opskit/semtag"
)

// Commit is one commit of a History.
type Commit struct {
	Message string
	// Files are written (path → content) by the commit; their paths are
	// the paths it touches.
	Files map[string]string
}

// TagSpec is one tag of a History.
type TagSpec struct {
	Name      string
	Commit    int  // index into History.Commits
	Annotated bool // an annotated tag (a lightweight one otherwise)
}

// History is a linear history to build a repository from: Commits in
// order, oldest first, each the parent of the next; the last is HEAD.
type History struct {
	Commits []Commit
	Tags    []TagSpec
}

// Built is a repository built from a History.
type Built struct {
	Repo semtag.Repo
	// SHAs are the commits' SHAs, in History order.
	SHAs []string
}

// TestRepo checks a semtag.Repo implementation. build must return a fresh
// repository holding h, with Head at the last commit, every time it is
// called.
func TestRepo(t *testing.T, build func(t *testing.T, h History) Built) {
	h := History{
		Commits: []Commit{
			{Message: "initial", Files: map[string]string{"go.mod": "module example.com/m\n", "tools/go.mod": "module example.com/m/tools\n"}},
			{Message: "feat(tools): a", Files: map[string]string{"tools/a.go": "a"}},
			{Message: "fix: root\n\nBody line.", Files: map[string]string{"root.go": "r"}},
			{Message: "docs(tools): b", Files: map[string]string{"tools/sub/b.md": "b"}},
			{Message: "chore: c", Files: map[string]string{"c.txt": "c"}},
		},
		Tags: []TagSpec{
			{Name: "v0.1.0", Commit: 0, Annotated: true},
			{Name: "v0.1.1", Commit: 2},
			{Name: "tools/v0.2.0", Commit: 1, Annotated: true},
			{Name: "latest", Commit: 4},
		},
	}
	ctxOf := func(t *testing.T) context.Context { return t.Context() }

	t.Run("Head", func(t *testing.T) {
		b := build(t, h)
		head, err := b.Repo.Head(ctxOf(t))
		if err != nil || head != b.SHAs[4] {
			t.Fatalf("Head() = %q, %v; want the last commit %q", head, err, b.SHAs[4])
		}
	})
	t.Run("Tags", func(t *testing.T) {
		b := build(t, h)
		for _, tc := range []struct {
			prefix string
			want   map[string]int
		}{
			{"", map[string]int{"v0.1.0": 0, "v0.1.1": 2}},
			{"tools/", map[string]int{"tools/v0.2.0": 1}},
		} {
			tags, err := b.Repo.Tags(ctxOf(t), tc.prefix)
			if err != nil {
				t.Fatalf("Tags(%q) = %v", tc.prefix, err)
			}
			got := map[string]string{}
			for _, tg := range tags {
				got[tg.Name] = tg.Commit
			}
			for name, i := range tc.want {
				if got[name] != b.SHAs[i] {
					t.Errorf("Tags(%q)[%q] is on %q; want commit %d (%q), peeled for annotated tags", tc.prefix, name, got[name], i, b.SHAs[i])
				}
			}
		}
	})
	t.Run("Tag", func(t *testing.T) {
		b := build(t, h)
		tg, err := b.Repo.Tag(ctxOf(t), "tools/v0.2.0")
		if err != nil || tg.Name != "tools/v0.2.0" || tg.Commit != b.SHAs[1] {
			t.Errorf("Tag(tools/v0.2.0) = %+v, %v; want it on %q", tg, err, b.SHAs[1])
		}
		if _, err := b.Repo.Tag(ctxOf(t), "v9.9.9"); !errors.Is(err, semtag.ErrTagNotFound) {
			t.Errorf("Tag(v9.9.9) = %v; want ErrTagNotFound", err)
		}
	})
	t.Run("Commits", func(t *testing.T) {
		b := build(t, h)
		for _, tc := range []struct {
			base int // -1 = from the root
			dir  string
			want []string
		}{
			{-1, "", []string{"chore: c", "docs(tools): b", "fix: root\n\nBody line.", "feat(tools): a", "initial"}},
			{0, "", []string{"chore: c", "docs(tools): b", "fix: root\n\nBody line.", "feat(tools): a"}},
			{0, "tools", []string{"docs(tools): b", "feat(tools): a"}},
			{1, "tools", []string{"docs(tools): b"}},
			{3, "tools", nil},
			{-1, "tools/sub", []string{"docs(tools): b"}},
		} {
			base := ""
			if tc.base >= 0 {
				base = b.SHAs[tc.base]
			}
			cs, err := b.Repo.Commits(ctxOf(t), base, b.SHAs[4], tc.dir)
			if err != nil {
				t.Fatalf("Commits(commit %d, HEAD, %q) = %v", tc.base, tc.dir, err)
			}
			var got []string
			for _, c := range cs {
				got = append(got, strings.TrimRight(c.Message, "\n"))
				if c.SHA == "" {
					t.Errorf("Commits(commit %d, HEAD, %q): a commit without SHA", tc.base, tc.dir)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Commits(commit %d, HEAD, %q) = %q; want %q (newest first)", tc.base, tc.dir, got, tc.want)
			}
			for _, c := range cs {
				i := slices.Index(b.SHAs, c.SHA)
				var want []string
				if i > 0 {
					want = []string{b.SHAs[i-1]}
				}
				if !slices.Equal(c.Parents, want) {
					t.Errorf("Commits(commit %d, HEAD, %q): commit %d has Parents %q; want %q (the release notes need them)", tc.base, tc.dir, i, c.Parents, want)
				}
			}
		}
	})
	t.Run("ReadFile", func(t *testing.T) {
		b := build(t, h)
		got, err := b.Repo.ReadFile(ctxOf(t), b.SHAs[4], "tools/go.mod")
		if err != nil || string(got) != "module example.com/m/tools\n" {
			t.Errorf("ReadFile(HEAD, tools/go.mod) = %q, %v", got, err)
		}
		if _, err := b.Repo.ReadFile(ctxOf(t), b.SHAs[0], "root.go"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(first commit, root.go) = %v; want fs.ErrNotExist (it came later)", err)
		}
	})
	t.Run("CreateTag", func(t *testing.T) {
		b := build(t, h)
		ctx := ctxOf(t)
		if err := b.Repo.CreateTag(ctx, "v0.1.2", b.SHAs[3], "Release v0.1.2"); err != nil {
			t.Fatalf("CreateTag(v0.1.2) = %v", err)
		}
		if tg, err := b.Repo.Tag(ctx, "v0.1.2"); err != nil || tg.Commit != b.SHAs[3] {
			t.Errorf("after CreateTag on commit 3, Tag(v0.1.2) = %+v, %v; want it on %q", tg, err, b.SHAs[3])
		}
		tags, err := b.Repo.Tags(ctx, "")
		if err != nil || !slices.ContainsFunc(tags, func(x semtag.Tag) bool { return x.Name == "v0.1.2" && x.Commit == b.SHAs[3] }) {
			t.Errorf("after CreateTag, Tags(\"\") = %+v, %v; want v0.1.2 on commit 3", tags, err)
		}
		for _, sha := range []string{b.SHAs[3], b.SHAs[4]} {
			if err := b.Repo.CreateTag(ctx, "v0.1.2", sha, "again"); !errors.Is(err, semtag.ErrTagExists) {
				t.Errorf("CreateTag(v0.1.2) again = %v; want ErrTagExists", err)
			}
		}
		if tg, _ := b.Repo.Tag(ctx, "v0.1.2"); tg.Commit != b.SHAs[3] {
			t.Errorf("a refused CreateTag moved v0.1.2 to %q", tg.Commit)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		b := build(t, h)
		ctx, cancel := context.WithCancel(ctxOf(t))
		cancel()
		if _, err := b.Repo.Tags(ctx, ""); !errors.Is(err, context.Canceled) {
			t.Errorf("Tags(cancelled ctx) = %v; want context.Canceled", err)
		}
		if err := b.Repo.CreateTag(ctx, "v0.9.0", b.SHAs[4], "m"); !errors.Is(err, context.Canceled) {
			t.Errorf("CreateTag(cancelled ctx) = %v; want context.Canceled", err)
		}
		if _, err := b.Repo.Tag(ctxOf(t), "v0.9.0"); !errors.Is(err, semtag.ErrTagNotFound) {
			t.Errorf("CreateTag with a cancelled ctx created the tag (Tag = %v)", err)
		}
	})
}

// Repo is an in-memory semtag.Repo over a linear history, safe for
// concurrent use. It holds no resources.
type Repo struct {
	mu      sync.Mutex
	commits []memCommit // oldest first
	tags    map[string]string
	head    int
	// CreateHook, when set, runs inside CreateTag before the tag is
	// created, with the Repo unlocked: it can create a tag itself (a
	// racing pipeline) or return an error for CreateTag to return.
	CreateHook func(name, commit string) error
	// Created lists the tags created through CreateTag, in order.
	Created []string
}

type memCommit struct {
	sha, msg string
	files    map[string]string // full tree
	touched  []string
}

// NewRepo returns a Repo holding h, with HEAD at its last commit. SHAs are
// derived from the commit's position: "c0000…0001" for the second commit.
func NewRepo(h History) *Repo {
	r := &Repo{tags: map[string]string{}}
	for _, c := range h.Commits {
		r.AddCommit(c)
	}
	for _, tg := range h.Tags {
		r.tags[tg.Name] = r.commits[tg.Commit].sha
	}
	return r
}

// Build returns a Built for h over a new Repo, for TestRepo.
func Build(_ *testing.T, h History) Built {
	r := NewRepo(h)
	return Built{Repo: r, SHAs: r.SHAs()}
}

// AddCommit appends a commit, moves HEAD to it and returns its SHA.
func (r *Repo) AddCommit(c Commit) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	tree := map[string]string{}
	if n := len(r.commits); n > 0 {
		for k, v := range r.commits[n-1].files {
			tree[k] = v
		}
	}
	var touched []string
	for k, v := range c.Files {
		tree[k] = v
		touched = append(touched, k)
	}
	sha := fmt.Sprintf("c%039x", len(r.commits))
	r.commits = append(r.commits, memCommit{sha: sha, msg: c.Message, files: tree, touched: touched})
	r.head = len(r.commits) - 1
	return sha
}

// AddTag adds or moves a tag to commit (a SHA).
func (r *Repo) AddTag(name, commit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tags[name] = commit
}

// SHAs returns every commit's SHA, oldest first.
func (r *Repo) SHAs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.commits))
	for i, c := range r.commits {
		out[i] = c.sha
	}
	return out
}

// TagMap returns a copy of the tags: name → commit SHA.
func (r *Repo) TagMap() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]string, len(r.tags))
	for k, v := range r.tags {
		m[k] = v
	}
	return m
}

func (r *Repo) index(sha string) int {
	for i, c := range r.commits {
		if c.sha == sha {
			return i
		}
	}
	return -1
}

// Head implements semtag.Repo.
func (r *Repo) Head(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.commits) == 0 {
		return "", errors.New("semtagtest: empty repository")
	}
	return r.commits[r.head].sha, nil
}

// Tags implements semtag.Repo.
func (r *Repo) Tags(ctx context.Context, prefix string) ([]semtag.Tag, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []semtag.Tag
	for name, sha := range r.tags {
		if strings.HasPrefix(name, prefix) {
			out = append(out, semtag.Tag{Name: name, Commit: sha})
		}
	}
	return out, nil
}

// Tag implements semtag.Repo.
func (r *Repo) Tag(ctx context.Context, name string) (semtag.Tag, error) {
	if err := ctx.Err(); err != nil {
		return semtag.Tag{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sha, ok := r.tags[name]
	if !ok {
		return semtag.Tag{}, fmt.Errorf("%w: %s", semtag.ErrTagNotFound, name)
	}
	return semtag.Tag{Name: name, Commit: sha}, nil
}

// Commits implements semtag.Repo.
func (r *Repo) Commits(ctx context.Context, base, head, dir string) ([]semtag.Commit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	hi, lo := r.index(head), -1
	if hi < 0 {
		return nil, fmt.Errorf("semtagtest: unknown commit %q", head)
	}
	if base != "" {
		if lo = r.index(base); lo < 0 {
			return nil, fmt.Errorf("semtagtest: unknown commit %q", base)
		}
	}
	var out []semtag.Commit
	for i := hi; i > lo; i-- {
		c := r.commits[i]
		if dir == "" || slices.ContainsFunc(c.touched, func(p string) bool { return strings.HasPrefix(p, dir+"/") }) {
			var parents []string
			if i > 0 {
				parents = []string{r.commits[i-1].sha}
			}
			out = append(out, semtag.Commit{SHA: c.sha, Message: c.msg, Parents: parents})
		}
	}
	return out, nil
}

// ReadFile implements semtag.Repo.
func (r *Repo) ReadFile(ctx context.Context, commit, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.index(commit)
	if i < 0 {
		return nil, fmt.Errorf("semtagtest: unknown commit %q", commit)
	}
	content, ok := r.commits[i].files[path]
	if !ok {
		return nil, fmt.Errorf("semtagtest: %s at %s: %w", path, commit, fs.ErrNotExist)
	}
	return []byte(content), nil
}

// CreateTag implements semtag.Repo.
func (r *Repo) CreateTag(ctx context.Context, name, commit, _ string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	hook := r.CreateHook
	r.mu.Unlock()
	if hook != nil {
		if err := hook(name, commit); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.index(commit) < 0 {
		return fmt.Errorf("semtagtest: unknown commit %q", commit)
	}
	if _, ok := r.tags[name]; ok {
		return fmt.Errorf("%w: %s", semtag.ErrTagExists, name)
	}
	r.tags[name] = commit
	r.Created = append(r.Created, name)
	return nil
}
