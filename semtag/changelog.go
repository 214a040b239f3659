package semtag

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/mod/semver"
)

// Change is one entry of the release notes: one commit.
type Change struct {
	// SHA is the commit's full SHA.
	SHA string
	// Type and Scope are the conventional header's type (lower-cased) and
	// scope, "" for a non-conventional commit.
	Type, Scope string
	// Subject is the conventional description, or the whole first line of
	// a non-conventional message.
	Subject string
	// Breaking reports a conventional commit with "!" or a BREAKING CHANGE
	// footer (rule 4's major level).
	Breaking bool
	// BreakingNotes are the texts of the BREAKING CHANGE footers.
	BreakingNotes []string
	// MergeRequests are the references ("group/project!12") from the
	// commit's own "See merge request" trailer and from the merge commit
	// that brought it in.
	MergeRequests []string
}

// Notes are the release notes of one tag: the commits since the previous
// tag, grouped the way Markdown prints them. Build them with NewNotes or
// Changelog.
type Notes struct {
	// Tag is the tag the notes are for; Previous the tag they start after
	// ("" for the whole history).
	Tag, Previous string
	// Breaking, Features, Fixes and Other are the groups, newest first.
	// A breaking change is listed under Breaking only; Other holds the
	// other conventional types and the non-conventional commits.
	Breaking, Features, Fixes, Other []Change
}

// Len returns the number of changes.
func (n Notes) Len() int { return len(n.Breaking) + len(n.Features) + len(n.Fixes) + len(n.Other) }

// ChangelogTrailer marks the commits that Tagger makes to update the
// changelog file ("Semtag-Changelog: v1.3.0"). NewNotes leaves such
// commits out, so that the next notes do not list them.
const ChangelogTrailer = "Semtag-Changelog"

var (
	mrTrailer  = regexp.MustCompile(`(?m)^See merge request (\S+![0-9]+)\s*$`)
	mergeTitle = regexp.MustCompile(`^Merge (branch|remote-tracking branch|tag|commit|pull request) `)
	footerTok  = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|BREAKING CHANGE)(: | #)`)
)

// isMerge reports a merge commit: two parents or more, or, when the Repo
// gave no parents, a header like git's and GitLab's merge messages.
func isMerge(c Commit) bool {
	if len(c.Parents) > 0 {
		return len(c.Parents) > 1
	}
	return mergeTitle.MatchString(c.Message)
}

// NewNotes builds the notes of tag from commits (newest first, the first
// being the tagged commit or its newest ancestor in the range), as
// Repo.Commits returns them for the range previous..tag.
//
// Merge commits are not listed themselves: the commits they brought in
// carry their "See merge request" references instead (this needs
// Commit.Parents). Commits carrying the ChangelogTrailer are left out.
func NewNotes(tag, previous string, commits []Commit) Notes {
	return newNotes(tag, previous, commits, nil)
}

// newNotes is NewNotes listing only the commits in keep (all when nil);
// the others still serve to find merge requests.
func newNotes(tag, previous string, commits []Commit, keep map[string]bool) Notes {
	n := Notes{Tag: tag, Previous: previous}
	inherited := mergeRefs(commits)
	for _, c := range commits {
		if isMerge(c) || hasChangelogTrailer(c.Message) || (keep != nil && !keep[c.SHA]) {
			continue
		}
		ch := parseChange(c)
		for _, r := range inherited[c.SHA] {
			if !slices.Contains(ch.MergeRequests, r) {
				ch.MergeRequests = append(ch.MergeRequests, r)
			}
		}
		switch {
		case ch.Breaking:
			n.Breaking = append(n.Breaking, ch)
		case ch.Type == "feat":
			n.Features = append(n.Features, ch)
		case ch.Type == "fix":
			n.Fixes = append(n.Fixes, ch)
		default:
			n.Other = append(n.Other, ch)
		}
	}
	return n
}

func hasChangelogTrailer(msg string) bool {
	for line := range strings.Lines(msg) {
		if strings.HasPrefix(line, ChangelogTrailer+": ") {
			return true
		}
	}
	return false
}

// parseChange reads one commit's header and footers, with the same
// header rule as CommitLevel.
func parseChange(c Commit) Change {
	header, body, _ := strings.Cut(c.Message, "\n")
	header = strings.TrimRight(header, "\r")
	ch := Change{SHA: c.SHA, Subject: strings.TrimSpace(header)}
	for _, m := range mrTrailer.FindAllStringSubmatch(c.Message, -1) {
		if !slices.Contains(ch.MergeRequests, m[1]) {
			ch.MergeRequests = append(ch.MergeRequests, m[1])
		}
	}
	m := conventionalHeader.FindStringSubmatch(header)
	if m == nil {
		return ch
	}
	ch.Type = strings.ToLower(m[1])
	ch.Scope = strings.Trim(m[2], "()")
	ch.Subject = strings.TrimSpace(header[len(m[0])-1:])
	ch.Breaking = m[3] == "!"
	lines := strings.Split(body, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], "\r")
		var rest string
		ok := false
		for _, tok := range []string{"BREAKING CHANGE", "BREAKING-CHANGE"} {
			if r, found := strings.CutPrefix(line, tok); found && (strings.HasPrefix(r, ": ") || strings.HasPrefix(r, " #")) {
				rest, ok = strings.TrimSpace(r[2:]), true
			}
		}
		if !ok {
			continue
		}
		ch.Breaking = true
		// The footer's value runs on until a blank line or the next footer.
		for i+1 < len(lines) {
			next := strings.TrimRight(lines[i+1], "\r")
			if strings.TrimSpace(next) == "" || footerTok.MatchString(next) {
				break
			}
			rest += " " + strings.TrimSpace(next)
			i++
		}
		if rest != "" {
			ch.BreakingNotes = append(ch.BreakingNotes, rest)
		}
	}
	return ch
}

// mergeRefs gives each commit the merge request references of the
// merge commit on the main line (the first-parent chain from the newest
// commit) that brought it in.
func mergeRefs(commits []Commit) map[string][]string {
	if len(commits) == 0 {
		return nil
	}
	byID := make(map[string]*Commit, len(commits))
	isParent := map[string]bool{}
	for i := range commits {
		byID[commits[i].SHA] = &commits[i]
		for _, p := range commits[i].Parents {
			isParent[p] = true
		}
	}
	head := commits[0].SHA
	for _, c := range commits {
		if !isParent[c.SHA] {
			head = c.SHA
			break
		}
	}
	var mainline []*Commit
	onMain := map[string]bool{}
	for sha := head; ; {
		c := byID[sha]
		if c == nil || onMain[sha] {
			break
		}
		onMain[sha] = true
		mainline = append(mainline, c)
		if len(c.Parents) == 0 {
			break
		}
		sha = c.Parents[0]
	}
	out := map[string][]string{}
	claimed := map[string]bool{}
	// Oldest merge first: a commit belongs to the first merge request that
	// brought it to the main line.
	for i := len(mainline) - 1; i >= 0; i-- {
		m := mainline[i]
		if len(m.Parents) < 2 {
			continue
		}
		var refs []string
		for _, r := range mrTrailer.FindAllStringSubmatch(m.Message, -1) {
			refs = append(refs, r[1])
		}
		stack := slices.Clone(m.Parents[1:])
		for len(stack) > 0 {
			sha := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			c := byID[sha]
			if c == nil || onMain[sha] || claimed[sha] {
				continue
			}
			claimed[sha] = true
			if len(refs) > 0 {
				out[sha] = refs
			}
			stack = append(stack, c.Parents...)
		}
	}
	return out
}

// Markdown returns the notes as a Markdown section: a "## tag" heading,
// then "### Breaking changes", "### Features", "### Fixes" and
// "### Other" with one list item per change, each ending with its merge
// request references and short SHA, which GitLab turns into links. Empty
// groups are left out; notes without changes say so.
func (n Notes) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n", escapeMarkdown(n.Tag))
	if n.Previous != "" {
		fmt.Fprintf(&b, "\nChanges since %s.\n", escapeMarkdown(n.Previous))
	}
	if n.Len() == 0 {
		b.WriteString("\nNo changes.\n")
		return b.String()
	}
	for _, g := range []struct {
		title string
		list  []Change
	}{{"Breaking changes", n.Breaking}, {"Features", n.Features}, {"Fixes", n.Fixes}, {"Other", n.Other}} {
		if len(g.list) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n### %s\n\n", g.title)
		for _, c := range g.list {
			b.WriteString("- ")
			switch {
			case c.Type == "":
				b.WriteString(escapeMarkdown(c.Subject))
			case g.title == "Other":
				b.WriteString(escapeMarkdown(c.Type))
				if c.Scope != "" {
					b.WriteString("(" + escapeMarkdown(c.Scope) + ")")
				}
				b.WriteString(": " + escapeMarkdown(c.Subject))
			default:
				if c.Scope != "" {
					b.WriteString("**" + escapeMarkdown(c.Scope) + ":** ")
				}
				b.WriteString(escapeMarkdown(c.Subject))
			}
			refs := slices.Clone(c.MergeRequests)
			if c.SHA != "" {
				refs = append(refs, c.SHA[:min(8, len(c.SHA))])
			}
			if len(refs) > 0 {
				b.WriteString(" (" + strings.Join(refs, ", ") + ")")
			}
			b.WriteString("\n")
			for _, note := range c.BreakingNotes {
				b.WriteString("\n  " + escapeMarkdown(note) + "\n")
			}
		}
	}
	return b.String()
}

// escapeMarkdown keeps commit text from opening HTML (comments, tags) in
// the rendered notes; the rest of Markdown is left to the authors.
var markdownEscaper = strings.NewReplacer(`<`, `\<`, `>`, `\>`)

func escapeMarkdown(s string) string { return markdownEscaper.Replace(s) }

// Previous returns the tag that the notes of tag start after (rule 9): for
// a release, the highest release tag for prefix below it; for a
// pre-release, the highest version tag (release or pre-release) below it;
// "" when there is none. tags are tag names in any order.
func Previous(prefix, tag string, tags []string) string {
	v, ok := Parse(prefix, tag)
	if !ok {
		return ""
	}
	pre := semver.Prerelease(v) != ""
	var best, bestV string
	for _, t := range tags {
		tv, ok := Parse(prefix, t)
		if !ok || t == tag || semver.Compare(tv, v) >= 0 || (!pre && semver.Prerelease(tv) != "") {
			continue
		}
		if best == "" || semver.Compare(tv, bestV) > 0 || semver.Compare(tv, bestV) == 0 && t < best {
			best, bestV = t, tv
		}
	}
	return best
}

// Changelog returns the notes of tag, a version tag for prefix that is
// (or, for a dry run, will be) on commit: the commits reachable from
// commit and not from Previous's tag, limited to prefix's directory (then
// it reads the range twice: once limited, once whole for the merge
// commits). It works on any Repo. Errors from the Repo come back wrapped; a tag that
// is not a version tag for prefix gives an error wrapping ErrBadPrefix.
func Changelog(ctx context.Context, repo Repo, prefix, tag, commit string) (Notes, error) {
	if _, ok := Parse(prefix, tag); !ok {
		return Notes{}, fmt.Errorf("%w: %q is not a version tag for prefix %q", ErrBadPrefix, tag, prefix)
	}
	tags, err := repo.Tags(ctx, prefix)
	if err != nil {
		return Notes{}, fmt.Errorf("semtag: list tags: %w", err)
	}
	names := make([]string, 0, len(tags))
	byName := make(map[string]string, len(tags))
	for _, t := range tags {
		names = append(names, t.Name)
		byName[t.Name] = t.Commit
	}
	prev := Previous(prefix, tag, names)
	commits, err := repo.Commits(ctx, byName[prev], commit, strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return Notes{}, fmt.Errorf("semtag: commits since %q: %w", prev, err)
	}
	if prefix == "" || len(commits) == 0 {
		return NewNotes(tag, prev, commits), nil
	}
	// A history limited to a directory loses the merge commits (git
	// simplifies them away): read the whole range for the merge requests,
	// and list only the commits that touch the directory.
	keep := make(map[string]bool, len(commits))
	for _, c := range commits {
		keep[c.SHA] = true
	}
	all, err := repo.Commits(ctx, byName[prev], commit, "")
	if err != nil {
		return Notes{}, fmt.Errorf("semtag: commits since %q: %w", prev, err)
	}
	return newNotes(tag, prev, all, keep), nil
}
