// Package semtag computes the next semantic-version tag of a Go module and
// creates it, over GitLab's tags API or a local git repository. It is what
// a `tag` job on a library's main branch runs after every merge.
//
// The shortest useful program tags HEAD of a local clone with the next
// patch version:
//
//	repo, err := semtag.NewGit(semtag.GitConfig{Dir: "."})
//	if err != nil {
//		return err
//	}
//	tagger, err := semtag.NewTagger(repo, semtag.Config{})
//	if err != nil {
//		return err
//	}
//	res, err := tagger.Run(ctx)
//	if err != nil {
//		return err
//	}
//	fmt.Println(res.Tag) // "v1.4.3", or "" when HEAD is already released
//
// In GitLab CI use NewGitLab instead, with CI_PROJECT_ID and CI_COMMIT_SHA.
// The CI job token (CI_JOB_TOKEN) cannot create tags: the client needs a
// project access token with the api scope. examples/auto-version wires
// both backends to flags.
//
// # The rules
//
// Next decides from data alone (all tag names, the tags on HEAD, the
// commits since the base), so a policy can be tested without a repository.
//
//  1. Version tags. For prefix P ("" for a root module, "tools/" for the
//     module in tools/), a tag is a version tag when it is P + "v" + a full
//     SemVer 2.0.0 version MAJOR.MINOR.PATCH[-pre][+build], valid by
//     golang.org/x/mod/semver, not a shorthand and not shaped like a Go
//     pseudo-version. Everything else is ignored: 1.2.3, v1.2, v1.02.3,
//     v1.2.3.4, V1.2.3, other prefixes, and nested modules
//     (tools/sub/v1.0.0 for P = "tools/").
//  2. Already released. When HEAD carries a version tag for P without a
//     pre-release part, nothing is created (Decision.Released names it),
//     so a re-run pipeline is a no-op.
//  3. Base version. The base is the highest version tag for P without a
//     pre-release, by SemVer precedence; build metadata is ignored for
//     ordering, but such tags count. Failing that, the highest
//     pre-release. Failing that, v0.0.0.
//  4. Bump level. BumpPatch, BumpMinor and BumpMajor give that level.
//     BumpConventional reads the commits since the base that touch P's
//     directory. A commit counts only when its header matches
//     "type(scope)?!?: description" (type case-insensitive): fix gives
//     patch, feat gives minor, "!" gives major, and so does a later line
//     starting with "BREAKING CHANGE" or "BREAKING-CHANGE" followed by
//     ": " or " #". Other types, non-conventional, merge and revert
//     headers give nothing. The highest level wins; no level means
//     nothing is created. A breaking change on 0.x gives v1.0.0.
//  5. Next version. From a release base: patch X.Y.Z+1, minor X.Y+1.0,
//     major X+1.0.0. From a pre-release base (only when no release
//     exists), finalize where node-semver's inc would: patch gives X.Y.Z;
//     minor gives X.Y.Z if Z = 0; major gives X.Y.Z if Y = Z = 0. From
//     v0.0.0: v0.0.1, v0.1.0 or v1.0.0.
//  6. Output. The tag is P + "v" + X.Y.Z, never with build metadata and,
//     unless rule 8 applies, without pre-release part.
//  7. Go major versions. A next version of v2 or later is refused with a
//     *ModuleMajorError when the module path in P's go.mod (read at the
//     commit being tagged) does not end in /vN (or .vN for gopkg.in) for
//     its major N. Config.AllowMajorMismatch turns this off. Without a
//     go.mod there is nothing to check.
//  8. Pre-releases. With Input.Pre (Config.Pre) set to an identifier such
//     as "rc" (CheckPre), the tag is P + "v" + X.Y.Z + "-rc.N", X.Y.Z from
//     rules 3 to 5 and N one more than the highest N among the tags
//     vX.Y.Z-rc.N (1 when none): v1.3.0-rc.1, rc.2, ... The base stays the
//     last release, so the level counts every commit since it. HEAD
//     already carrying a release or an rc tag is a no-op. A run without
//     Pre finalizes as before (v1.3.0, also on an rc's commit). Rule 7
//     holds for pre-releases too.
//  9. Release notes. The notes of a tag (Changelog) list the commits since
//     Previous: the highest release below it, or for a pre-release the
//     highest version of any kind below it (the whole history when there
//     is none), limited to P's directory. They are grouped: Breaking
//     changes (conventional commits with "!" or a BREAKING CHANGE footer,
//     with the footer's text), Features (feat), Fixes (fix) and Other
//     (other types and non-conventional commits; merge commits and the
//     changelog commits that carry ChangelogTrailer are left out). Each
//     entry ends with its merge requests ("See merge request g/p!12"
//     trailers, its own or those of the main-line merge commit that
//     brought it in, which needs Commit.Parents) and its short SHA.
//
// # Releases and the changelog
//
// With Config.Release, Run publishes a GitLab Release of the tag with its
// notes in Markdown; with Config.ChangelogFile, it adds them to that file
// on Config.ChangelogBranch with a "[skip ci]" commit through the
// repository files API. Both need the GitLab backend (Releaser,
// FileCommitter) and both are idempotent: an existing release is left as
// is (Config.UpdateRelease replaces its notes), a release a racing
// pipeline created first is found, never duplicated (GitLab answers 409,
// or 400 when both creates passed its check), and a file that has the
// tag's "<!-- semtag:vX.Y.Z -->" section is left alone; a commit refused
// because the file changed meanwhile is redone on the new content. When
// HEAD already carries the tag, Run still publishes what is missing, so a
// re-run completes an interrupted one. The tag stays on the released
// commit; the changelog commit follows it on the branch.
//
// # Races and re-runs
//
// Tagger.Run creates the tag on the exact commit (for GitLab,
// CI_COMMIT_SHA, not the branch, which may have moved on). When the chosen
// name exists already (GitLab answers 400 "Tag vX already exists"; its
// docs say 405; a local push is rejected), Run reads that tag: if it is on
// our commit, another pipeline did our work and Run succeeds with
// Result.Released set; otherwise Run recomputes with that tag known and
// tries again, at most Config.MaxAttempts times (ErrRace). A GitLab create
// that client-go retries after a lost answer ends the same way, so it
// never makes a second tag. To keep tags in merge order as well, give the
// CI job a resource_group so that tag jobs run one at a time.
//
// # Testing
//
// Users test their own policies with Next, which needs no repository.
// The test package semtag/semtagtest has an in-memory Repo with a hook for
// racing pipelines, and TestRepo, the checks any Repo implementation must
// pass (semtag runs them on the in-memory Repo, on Git over real git
// repositories and on GitLab over gitlabx/gitlabtest). Code that drives a
// Tagger over GitLab is tested against gitlabx/gitlabtest, the in-memory
// GitLab server (see the examples).
package semtag
