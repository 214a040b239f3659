// Command auto-version creates the next semantic-version tag of a Go module,
// in a GitLab project (through the API) or in a local git clone.
//
// It prints the tag it creates (or, with -dry-run, would create) alone on
// one stdout line. It prints nothing and exits 0 when the commit already
// carries a version tag, so a re-run pipeline is a no-op, and when the
// conventional mode finds nothing to release.
//
// Usage:
//
//	auto-version [-repo-dir DIR [-remote origin] | GitLab flags] [-prefix P] [-bump patch|minor|major|conventional] [-pre ID] [-release] [-changelog] [-dry-run]
//
// With -pre rc it creates pre-releases (v1.3.0-rc.1, rc.2, ...); a run
// without -pre finalizes v1.3.0. On GitLab, -release creates the GitLab
// Release of the tag with its notes (grouped conventional commits), and
// -changelog adds them to CHANGELOG.md on the branch (CI_COMMIT_BRANCH)
// with a "[skip ci]" commit; both are idempotent, so a re-run completes
// what an interrupted run left and duplicates nothing. -notes-file writes
// the notes to a file, also with -dry-run.
//
// Inside GitLab CI the GitLab flags default from CI_SERVER_URL,
// CI_PROJECT_ID and CI_COMMIT_SHA, and the token is read from the
// PRIVATE_TOKEN environment variable or from -token-file. The CI job token
// cannot create tags: use a project access token with the api scope.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit"
	"github.com/opskit/opskit/examples/internal/cli"
	"github.com/opskit/opskit/semtag"
)

func main() {
	cli.Main("auto-version", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}

var errUsage = cli.ErrUsage // the run tests compare with errUsage

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("auto-version", stderr, "Usage: auto-version [-repo-dir DIR | GitLab flags] [-prefix P] [-bump patch|minor|major|conventional] [-pre ID] [-release] [-changelog] [-dry-run]\n\n"+
		"Creates the next semantic-version tag and prints it alone on stdout;\nprints nothing when the commit already carries a version tag.\n\nFlags:\n")
	repoDir := fs.String("repo-dir", "", "use the local git clone in `DIR` instead of the GitLab API")
	remote := fs.String("remote", "", "with -repo-dir: read tags from and push the new tag to this `remote` (e.g. origin)")
	rev := fs.String("rev", "HEAD", "with -repo-dir: the `revision` to tag")
	server := fs.String("gitlab-url", getenv("CI_SERVER_URL"), "GitLab base `URL` (default $CI_SERVER_URL)")
	project := fs.String("project", getenv("CI_PROJECT_ID"), "GitLab project `ID or path` (default $CI_PROJECT_ID)")
	commit := fs.String("commit", getenv("CI_COMMIT_SHA"), "GitLab: the commit `SHA` (or ref) to tag (default $CI_COMMIT_SHA)")
	tokenFile := fs.String("token-file", "", "GitLab: read the token (api scope) from `FILE`; default $PRIVATE_TOKEN")
	prefix := fs.String("prefix", "", "tag prefix `P` of the module: \"\" for the root module, \"tools/\" for tools/go.mod")
	bump := fs.String("bump", "patch", "bump `mode`: patch, minor, major or conventional")
	dryRun := fs.Bool("dry-run", false, "print the next tag without creating it")
	allowMajor := fs.Bool("allow-major-mismatch", false, "allow v2+ even when go.mod's module path lacks /vN")
	message := fs.String("message", "", "tag annotation (default \"Release <tag>\")")
	verbose := fs.Bool("v", false, "log each step (to stderr)")
	pre := fs.String("pre", "", "create a pre-release `ID`.N (e.g. rc gives v1.3.0-rc.1, rc.2, ...); without it, finalize")
	release := fs.Bool("release", false, "GitLab: create the GitLab Release of the tag with its notes (an existing one is left)")
	updateRelease := fs.Bool("update-release", false, "GitLab: with -release, replace the notes of an existing release")
	changelog := fs.Bool("changelog", false, "GitLab: add the notes to the changelog file on -branch with a commit")
	changelogFile := fs.String("changelog-file", "", "with -changelog: the `path` of the file (default P + \"CHANGELOG.md\")")
	branch := fs.String("branch", getenv("CI_COMMIT_BRANCH"), "with -changelog: the `branch` to commit to (default $CI_COMMIT_BRANCH)")
	notesFile := fs.String("notes-file", "", "write the release notes (Markdown) to `FILE`, also with -dry-run")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef(fs, "unexpected arguments %q", fs.Args())
	}
	b, err := semtag.ParseBump(*bump)
	if err != nil {
		return cli.Usagef(fs, "%v", err)
	}
	if err := semtag.CheckPrefix(*prefix); err != nil {
		return cli.Usagef(fs, "%v", err)
	}
	if err := semtag.CheckPre(*pre); err != nil {
		return cli.Usagef(fs, "%v", err)
	}
	if *repoDir != "" && (*release || *changelog) {
		return cli.Usagef(fs, "-release and -changelog need the GitLab API, not -repo-dir")
	}
	if *changelog && *branch == "" {
		return cli.Usagef(fs, "-changelog needs -branch (in GitLab CI: CI_COMMIT_BRANCH)")
	}
	cfile := ""
	if *changelog {
		cfile = *changelogFile
		if cfile == "" {
			cfile = *prefix + "CHANGELOG.md"
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var repo semtag.Repo
	var gl *semtag.GitLab
	if *repoDir != "" {
		repo, err = semtag.NewGit(semtag.GitConfig{Dir: *repoDir, Rev: *rev, Remote: *remote, Logger: log})
	} else {
		if *server == "" || *project == "" || *commit == "" {
			return cli.Usagef(fs, "need -repo-dir, or -gitlab-url, -project and -commit (in GitLab CI: CI_SERVER_URL, CI_PROJECT_ID, CI_COMMIT_SHA)")
		}
		token := opskit.Secret(strings.TrimSpace(getenv("PRIVATE_TOKEN")))
		if *tokenFile != "" {
			if token, err = opskit.SecretFromFile(*tokenFile); err != nil {
				return err
			}
		}
		if token == "" {
			return cli.Usagef(fs, "no GitLab token: set PRIVATE_TOKEN or -token-file (a project access token with the api scope; CI_JOB_TOKEN cannot create tags)")
		}
		client, cerr := gitlab.NewClient(token.Reveal(), gitlab.WithBaseURL(*server))
		if cerr != nil {
			return fmt.Errorf("gitlab client: %w", cerr)
		}
		var pid any = *project
		if n, perr := strconv.ParseInt(*project, 10, 64); perr == nil {
			pid = n
		}
		gl, err = semtag.NewGitLab(client, semtag.GitLabConfig{Project: pid, Commit: *commit, Logger: log})
		repo = gl
	}
	if err != nil {
		return err
	}
	tagger, err := semtag.NewTagger(repo, semtag.Config{
		Prefix: *prefix, Bump: b, DryRun: *dryRun, AllowMajorMismatch: *allowMajor, Message: *message, Logger: log,
		Pre: *pre, Release: *release, UpdateRelease: *updateRelease, ChangelogFile: cfile, ChangelogBranch: *branch,
	})
	if err != nil {
		return err
	}
	res, err := tagger.Run(ctx)
	if gl != nil {
		log.Debug("auto-version: GitLab API calls", "calls", gl.APICalls())
	}
	if err != nil {
		return err
	}
	if *notesFile != "" {
		var notes string
		switch {
		case res.Notes != nil:
			notes = res.Notes.Markdown()
		case res.Tag != "" || res.Released != "":
			tag := res.Tag
			if tag == "" {
				tag = res.Released
			}
			n, nerr := semtag.Changelog(ctx, repo, *prefix, tag, res.Commit)
			if nerr != nil {
				return nerr
			}
			notes = n.Markdown()
		}
		if err := os.WriteFile(*notesFile, []byte(notes), 0o644); err != nil {
			return fmt.Errorf("notes file: %w", err)
		}
	}
	switch {
	case res.Released != "":
		log.Info("auto-version: commit already released", "commit", res.Commit, "tag", res.Released)
	case res.Tag == "":
		log.Info("auto-version: no releasable change since the base", "base", res.Base)
	default:
		fmt.Fprintln(stdout, res.Tag)
	}
	return nil
}
