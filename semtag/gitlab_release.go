package semtag

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// GitLab implements Releaser and FileCommitter.
var (
	_ Releaser      = (*GitLab)(nil)
	_ FileCommitter = (*GitLab)(nil)
)

// Release reads the release of tag (GET /projects/:id/releases/:tag_name).
func (g *GitLab) Release(ctx context.Context, tag string) (Release, error) {
	g.calls.Add(1)
	r, _, err := g.client.Releases.GetRelease(g.cfg.Project, tag, gitlab.WithContext(ctx))
	if errors.Is(err, gitlab.ErrNotFound) {
		return Release{}, fmt.Errorf("%w: %s", ErrReleaseNotFound, tag)
	}
	if err != nil {
		return Release{}, g.wrap(ctx, err)
	}
	return Release{Tag: r.TagName, Name: r.Name, Notes: r.Description}, nil
}

// CreateRelease creates the release of the existing tag rel.Tag, without
// a ref, so that GitLab never creates the tag itself. GitLab answers 409
// "Release already exists" when the tag has a release, and 400 ("Tag has
// already been taken") when a racing create passed that check at the
// same time; both become ErrReleaseExists. A create that client-go
// retries after a lost answer ends the same way, so it never makes a
// second release.
func (g *GitLab) CreateRelease(ctx context.Context, rel Release) error {
	g.calls.Add(1)
	opt := &gitlab.CreateReleaseOptions{TagName: gitlab.Ptr(rel.Tag), Description: gitlab.Ptr(rel.Notes)}
	if rel.Name != "" {
		opt.Name = gitlab.Ptr(rel.Name)
	}
	_, _, err := g.client.Releases.CreateRelease(g.cfg.Project, opt, gitlab.WithContext(ctx))
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch er.Response.StatusCode {
		case http.StatusConflict:
			return fmt.Errorf("%w: %s (%d)", ErrReleaseExists, rel.Tag, er.Response.StatusCode)
		case http.StatusBadRequest:
			if msg := er.Message + string(er.Body); strings.Contains(msg, "already been taken") || strings.Contains(msg, "already exists") {
				return fmt.Errorf("%w: %s (%d)", ErrReleaseExists, rel.Tag, er.Response.StatusCode)
			}
		}
	}
	if err != nil {
		return g.wrap(ctx, err)
	}
	return nil
}

// UpdateRelease replaces the name and description of rel.Tag's release.
func (g *GitLab) UpdateRelease(ctx context.Context, rel Release) error {
	g.calls.Add(1)
	name := rel.Name
	if name == "" {
		name = rel.Tag
	}
	_, _, err := g.client.Releases.UpdateRelease(g.cfg.Project, rel.Tag, &gitlab.UpdateReleaseOptions{
		Name: gitlab.Ptr(name), Description: gitlab.Ptr(rel.Notes),
	}, gitlab.WithContext(ctx))
	if errors.Is(err, gitlab.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrReleaseNotFound, rel.Tag)
	}
	if err != nil {
		return g.wrap(ctx, err)
	}
	return nil
}

// BranchFile reads path at the head of branch with the repository files
// API; the version is the file's last_commit_id.
func (g *GitLab) BranchFile(ctx context.Context, branch, path string) ([]byte, string, error) {
	g.calls.Add(1)
	f, _, err := g.client.RepositoryFiles.GetFile(g.cfg.Project, path, &gitlab.GetFileOptions{Ref: gitlab.Ptr(branch)}, gitlab.WithContext(ctx))
	if errors.Is(err, gitlab.ErrNotFound) {
		return nil, "", fmt.Errorf("semtag: %s on %s: %w", path, branch, fs.ErrNotExist)
	}
	if err != nil {
		return nil, "", g.wrap(ctx, err)
	}
	content := []byte(f.Content)
	if f.Encoding == "base64" {
		if content, err = base64.StdEncoding.DecodeString(f.Content); err != nil {
			return nil, "", fmt.Errorf("semtag: %s on %s: %w", path, branch, err)
		}
	}
	return content, f.LastCommitID, nil
}

// CommitFile creates path on branch (version "") or updates it with
// last_commit_id = version, so that GitLab refuses the commit when the
// file changed meanwhile. GitLab's 400 answers for that ("A file with
// this name already exists", "You are attempting to update a file that
// has changed since you started editing it", "A file with this name
// doesn't exist") become ErrFileChanged.
func (g *GitLab) CommitFile(ctx context.Context, branch, path, version, message string, content []byte) error {
	g.calls.Add(1)
	var err error
	if version == "" {
		_, _, err = g.client.RepositoryFiles.CreateFile(g.cfg.Project, path, &gitlab.CreateFileOptions{
			Branch: gitlab.Ptr(branch), Content: gitlab.Ptr(string(content)), CommitMessage: gitlab.Ptr(message),
		}, gitlab.WithContext(ctx))
	} else {
		_, _, err = g.client.RepositoryFiles.UpdateFile(g.cfg.Project, path, &gitlab.UpdateFileOptions{
			Branch: gitlab.Ptr(branch), Content: gitlab.Ptr(string(content)), CommitMessage: gitlab.Ptr(message),
			LastCommitID: gitlab.Ptr(version),
		}, gitlab.WithContext(ctx))
	}
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusBadRequest {
		msg := er.Message + string(er.Body)
		for _, s := range []string{"already exists", "has changed", "doesn't exist", "does not exist"} {
			if strings.Contains(msg, s) {
				return fmt.Errorf("%w: %s on %s (%s)", ErrFileChanged, path, branch, er.Message)
			}
		}
	}
	if err != nil {
		return g.wrap(ctx, err)
	}
	return nil
}
