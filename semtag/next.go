package semtag

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Bump selects how Next chooses the level of the next version.
type Bump string

// The bump modes. The zero value of Bump means BumpPatch.
const (
	BumpPatch        Bump = "patch"
	BumpMinor        Bump = "minor"
	BumpMajor        Bump = "major"
	BumpConventional Bump = "conventional" // from the commit messages since the base (rule 4)
)

// ParseBump returns the Bump named s: "patch", "minor", "major" or
// "conventional". Any other value gives an error wrapping ErrBadBump.
func ParseBump(s string) (Bump, error) {
	switch b := Bump(s); b {
	case BumpPatch, BumpMinor, BumpMajor, BumpConventional:
		return b, nil
	}
	return "", fmt.Errorf("%w %q (want patch, minor, major or conventional)", ErrBadBump, s)
}

// Level is the size of a version change.
type Level int

// The levels, in increasing order. The highest level among the commits wins.
const (
	LevelNone Level = iota
	LevelPatch
	LevelMinor
	LevelMajor
)

// String returns "none", "patch", "minor" or "major".
func (l Level) String() string {
	switch l {
	case LevelPatch:
		return "patch"
	case LevelMinor:
		return "minor"
	case LevelMajor:
		return "major"
	}
	return "none"
}

// Commit is one commit for the conventional bump mode and the release
// notes.
type Commit struct {
	SHA     string
	Message string // the full message: header, body and footers
	// Parents are the SHAs of the commit's parents, first parent first.
	// Only the release notes read them, to give the commits a merge
	// commit brought in its merge request reference; a Repo that leaves
	// them nil still works, without those references.
	Parents []string
}

// Errors returned by Next and the Tagger.
var (
	// ErrBadBump is returned for a bump mode that is not one of the Bump constants.
	ErrBadBump = errors.New("semtag: unknown bump mode")
	// ErrBadPrefix is returned for a prefix that is neither "" nor a
	// relative directory ending in "/".
	ErrBadPrefix = errors.New("semtag: bad prefix")
	// ErrModuleMajor is returned, wrapped in a *ModuleMajorError, when the
	// next version has major 2 or more and the module path in go.mod does
	// not end in the matching /vN.
	ErrModuleMajor = errors.New("semtag: module path does not match the major version")
)

// ModuleMajorError reports a version whose major does not match the module
// path (rule 7). errors.Is(err, ErrModuleMajor) holds for it.
type ModuleMajorError struct {
	ModulePath string // from go.mod
	Version    string // the refused version, vX.Y.Z
}

func (e *ModuleMajorError) Error() string {
	want := semver.Major(e.Version)
	return fmt.Sprintf("semtag: refusing %s: module path %q does not end in /%s (change go.mod's module line, or set AllowMajorMismatch)", e.Version, e.ModulePath, want)
}

// Is reports whether target is ErrModuleMajor.
func (e *ModuleMajorError) Is(target error) bool { return target == ErrModuleMajor }

// Input is everything Next decides from. It holds only data, so users can
// test their own policies without a repository.
type Input struct {
	// Prefix is P: "" for a root module, "tools/" for the module in tools/.
	Prefix string
	// Tags are the names of all tags of the repository (any order; tags
	// that are not version tags for Prefix are ignored).
	Tags []string
	// HeadTags are the names of the tags on the commit being released.
	HeadTags []string
	// Commits are the commits after the base (see Base) up to and
	// including HEAD, limited to Prefix's directory. Only BumpConventional
	// reads them.
	Commits []Commit
	// Bump is the bump mode; "" means BumpPatch.
	Bump Bump
	// GoMod is the content of Prefix's go.mod at HEAD, or nil when there is
	// none. When set, a next version of v2 or more is refused unless the
	// module path ends in /vN for it (rule 7).
	GoMod []byte
	// AllowMajorMismatch turns off the go.mod check of rule 7.
	AllowMajorMismatch bool
	// Pre, when set (e.g. "rc"), asks for a pre-release of the next
	// version: X.Y.Z-Pre.N with N one more than the highest such tag
	// (rule 8). It must pass CheckPre.
	Pre string
}

// Decision is what Next decided.
type Decision struct {
	// Tag is the tag to create (Prefix + vX.Y.Z), or "" when nothing is to
	// be created: HEAD is already released (Released != "") or the
	// conventional mode found no releasable commit (Level == LevelNone).
	Tag string
	// Version is Tag without the prefix ("" when Tag is "").
	Version string
	// Released is the version tag already on HEAD that makes this a no-op
	// (rule 2; with Input.Pre also a pre-release of that channel), or "".
	Released string
	// Base is the tag the next version was computed from, or "" for v0.0.0.
	Base string
	// BaseVersion is Base without the prefix, "v0.0.0" when Base is "".
	BaseVersion string
	// Level is the bump level that was applied.
	Level Level
}

// Parse reports whether tag is a version tag for prefix (rule 1) and, if
// so, returns its version (tag without the prefix, as in "v1.2.3-rc.1+b5").
func Parse(prefix, tag string) (version string, ok bool) {
	v, ok := strings.CutPrefix(tag, prefix)
	if !ok || !semver.IsValid(v) || module.IsPseudoVersion(v) {
		return "", false
	}
	// semver.IsValid accepts the shorthands v1 and v1.2; rule 1 wants
	// the full MAJOR.MINOR.PATCH.
	core := v
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	if strings.Count(core, ".") != 2 {
		return "", false
	}
	return v, true
}

// CheckPrefix returns an error wrapping ErrBadPrefix unless prefix is "" or
// a slash-separated relative directory ending in "/", such as "tools/".
// A prefix starting with '-' is refused too: its tag names would read as
// options on a git command line ("--upload-pack=touch/v1.0.0").
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if strings.HasPrefix(prefix, "-") {
		return fmt.Errorf("%w %q: starts with '-', as a command-line option does", ErrBadPrefix, prefix)
	}
	dir, ok := strings.CutSuffix(prefix, "/")
	if !ok || dir == "" || strings.HasPrefix(dir, "/") {
		return fmt.Errorf("%w %q: want \"\" or a relative directory ending in /, such as \"tools/\"", ErrBadPrefix, prefix)
	}
	for _, el := range strings.Split(dir, "/") {
		if el == "" || el == "." || el == ".." || strings.ContainsAny(el, " \t\n\\:~^?*[") {
			return fmt.Errorf("%w %q: bad path element %q", ErrBadPrefix, prefix, el)
		}
	}
	return nil
}

// Base returns the base of the next version (rule 3): the highest version
// tag for prefix without a pre-release part; failing that, the highest
// pre-release; failing that, "" (meaning v0.0.0). Tags that differ only in
// build metadata have equal precedence; among them the one without build
// metadata wins, then the lexically smallest name.
func Base(prefix string, tags []string) (tag, version string) {
	var bestRel, bestPre, relV, preV string
	better := func(v, t, curV, curT string) bool {
		if curT == "" {
			return true
		}
		if c := semver.Compare(v, curV); c != 0 {
			return c > 0
		}
		hb, cb := semver.Build(v) != "", semver.Build(curV) != ""
		if hb != cb {
			return !hb
		}
		return t < curT
	}
	for _, t := range tags {
		v, ok := Parse(prefix, t)
		if !ok {
			continue
		}
		if semver.Prerelease(v) == "" {
			if better(v, t, relV, bestRel) {
				bestRel, relV = t, v
			}
		} else if better(v, t, preV, bestPre) {
			bestPre, preV = t, v
		}
	}
	if bestRel != "" {
		return bestRel, relV
	}
	return bestPre, preV
}

// Released returns the first version tag for prefix, in sorted order, among
// headTags that has no pre-release part, or "" (rule 2).
func Released(prefix string, headTags []string) string {
	var rel []string
	for _, t := range headTags {
		if v, ok := Parse(prefix, t); ok && semver.Prerelease(v) == "" {
			rel = append(rel, t)
		}
	}
	sort.Strings(rel)
	if len(rel) == 0 {
		return ""
	}
	return rel[0]
}

// conventionalHeader is rule 4's header: type(scope)?!?: description.
var conventionalHeader = regexp.MustCompile(`^([A-Za-z]+)(\([^()\r\n]+\))?(!)?: \S`)

// CommitLevel returns the bump level of one commit message in the
// conventional mode (rule 4).
func CommitLevel(message string) Level {
	header, body, _ := strings.Cut(message, "\n")
	header = strings.TrimRight(header, "\r")
	m := conventionalHeader.FindStringSubmatch(header)
	if m == nil {
		return LevelNone
	}
	if m[3] == "!" {
		return LevelMajor
	}
	for _, line := range strings.Split(body, "\n") {
		for _, tok := range []string{"BREAKING CHANGE", "BREAKING-CHANGE"} {
			if rest, ok := strings.CutPrefix(line, tok); ok && (strings.HasPrefix(rest, ": ") || strings.HasPrefix(rest, " #")) {
				return LevelMajor
			}
		}
	}
	switch strings.ToLower(m[1]) {
	case "feat":
		return LevelMinor
	case "fix":
		return LevelPatch
	}
	return LevelNone
}

// ConventionalLevel returns the highest CommitLevel among commits.
func ConventionalLevel(commits []Commit) Level {
	l := LevelNone
	for _, c := range commits {
		l = max(l, CommitLevel(c.Message))
		if l == LevelMajor {
			break
		}
	}
	return l
}

// Next decides the next version tag from in, following the rules in the
// package documentation. It does no I/O. It returns an error wrapping
// ErrBadPrefix or ErrBadBump for bad input, or a *ModuleMajorError (rule 7).
func Next(in Input) (Decision, error) {
	if err := CheckPrefix(in.Prefix); err != nil {
		return Decision{}, err
	}
	bump := in.Bump
	if bump == "" {
		bump = BumpPatch
	}
	if _, err := ParseBump(string(bump)); err != nil {
		return Decision{}, err
	}
	if err := CheckPre(in.Pre); err != nil {
		return Decision{}, err
	}
	var d Decision
	d.Base, d.BaseVersion = Base(in.Prefix, in.Tags)
	if d.Base == "" {
		d.BaseVersion = "v0.0.0"
	}
	if d.Released = releasedOn(in.Prefix, in.Pre, in.HeadTags); d.Released != "" {
		return d, nil
	}
	switch bump {
	case BumpPatch:
		d.Level = LevelPatch
	case BumpMinor:
		d.Level = LevelMinor
	case BumpMajor:
		d.Level = LevelMajor
	case BumpConventional:
		d.Level = ConventionalLevel(in.Commits)
	}
	if d.Level == LevelNone {
		return d, nil
	}
	v := increment(d.BaseVersion, d.Level)
	if in.Pre != "" {
		v = preVersion(in.Prefix, in.Pre, v, in.Tags)
	}
	if in.GoMod != nil && !in.AllowMajorMismatch {
		if err := checkModuleMajor(in.GoMod, v); err != nil {
			return Decision{}, err
		}
	}
	d.Version = v
	d.Tag = in.Prefix + v
	return d, nil
}

// increment applies rule 5 to a valid base version. It works on the
// decimal strings, so versions beyond 64 bits increment correctly.
func increment(base string, l Level) string {
	core := strings.TrimPrefix(base, "v")
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	p := strings.SplitN(core, ".", 3)
	x, y, z := p[0], p[1], p[2]
	pre := semver.Prerelease(base) != ""
	switch {
	case l == LevelPatch && pre:
	case l == LevelPatch:
		z = incDecimal(z)
	case l == LevelMinor && pre && z == "0":
	case l == LevelMinor:
		y, z = incDecimal(y), "0"
	case l == LevelMajor && pre && y == "0" && z == "0":
	default: // major
		x, y, z = incDecimal(x), "0", "0"
	}
	return "v" + x + "." + y + "." + z
}

// incDecimal adds one to a decimal number without leading zeros.
func incDecimal(s string) string {
	b := []byte(s)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < '9' {
			b[i]++
			return string(b)
		}
		b[i] = '0'
	}
	return "1" + string(b)
}

// checkModuleMajor applies rule 7 to version v and a go.mod file.
func checkModuleMajor(gomod []byte, v string) error {
	path := modfile.ModulePath(gomod)
	major := semver.Major(v)
	if major == "v0" || major == "v1" {
		return nil
	}
	_, pathMajor, ok := module.SplitPathVersion(path)
	if ok && (pathMajor == "/"+major || pathMajor == "."+major) {
		return nil
	}
	return &ModuleMajorError{ModulePath: path, Version: v}
}
