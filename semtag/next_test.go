package semtag_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit/semtag"
)

// messy is a tag set seen on real repositories: shorthands, leading zeros,
// other prefixes, nested modules, pseudo-versions, build metadata.
var messy = []string{
	"1.9.9", "v1.2", "v1", "v1.02.3", "v1.2.3.4", "V9.9.9", "release-1", "latest",
	"tools/v3.0.0", "tools/sub/v4.0.0", "vv1.0.0", "v1.0.0-", "v1.0.0+",
	"v0.0.0-20200101000000-abcdefabcdef", "v1.2.4-0.20200101000000-abcdefabcdef",
	"v1.0.0", "v1.1.0-rc.1", "v1.0.1+build.7",
}

func TestNext(t *testing.T) {
	feat := semtag.Commit{Message: "feat: add a knob"}
	fix := semtag.Commit{Message: "fix(parser): off by one"}
	chore := semtag.Commit{Message: "chore: bump deps"}
	tests := []struct {
		name     string
		in       semtag.Input
		tag      string // "" = nothing to create
		base     string
		released string
		level    semtag.Level
	}{
		// Rule 1: what is a version tag.
		{name: "no tags starts at v0.0.1", in: semtag.Input{}, tag: "v0.0.1", level: semtag.LevelPatch},
		{name: "only non-version tags are ignored", in: semtag.Input{Tags: []string{"1.2.3", "v1.2", "v1.02.3", "v1.2.3.4", "V1.2.3", "v1", "x/v1.0.0"}}, tag: "v0.0.1", level: semtag.LevelPatch},
		{name: "pseudo-versions are ignored", in: semtag.Input{Tags: []string{"v0.0.0-20200101000000-abcdefabcdef", "v1.2.4-0.20200101000000-abcdefabcdef", "v0.1.0"}}, tag: "v0.1.1", base: "v0.1.0", level: semtag.LevelPatch},
		{name: "messy set: highest release with build metadata is the base", in: semtag.Input{Tags: messy}, tag: "v1.0.2", base: "v1.0.1+build.7", level: semtag.LevelPatch},
		{name: "root prefix ignores submodule tags", in: semtag.Input{Tags: []string{"tools/v5.0.0", "v0.3.0"}}, tag: "v0.3.1", base: "v0.3.0", level: semtag.LevelPatch},
		{name: "submodule prefix ignores root and nested tags", in: semtag.Input{Prefix: "tools/", Tags: messy}, tag: "tools/v3.0.1", base: "tools/v3.0.0", level: semtag.LevelPatch},
		{name: "nested prefix", in: semtag.Input{Prefix: "tools/sub/", Tags: messy, Bump: semtag.BumpMinor}, tag: "tools/sub/v4.1.0", base: "tools/sub/v4.0.0", level: semtag.LevelMinor},
		{name: "submodule with no tags of its own", in: semtag.Input{Prefix: "api/", Tags: messy}, tag: "api/v0.0.1", level: semtag.LevelPatch},

		// Rule 2: already released.
		{name: "HEAD has a release: nothing", in: semtag.Input{Tags: []string{"v1.0.0"}, HeadTags: []string{"v1.0.0"}}, released: "v1.0.0", base: "v1.0.0"},
		{name: "HEAD has a release with build metadata: nothing", in: semtag.Input{Tags: []string{"v1.0.0+b1"}, HeadTags: []string{"v1.0.0+b1"}}, released: "v1.0.0+b1", base: "v1.0.0+b1"},
		{name: "HEAD has only a pre-release: tag it", in: semtag.Input{Tags: []string{"v1.0.0", "v1.1.0-rc.1"}, HeadTags: []string{"v1.1.0-rc.1"}}, tag: "v1.0.1", base: "v1.0.0", level: semtag.LevelPatch},
		{name: "HEAD has another module's release: tag it", in: semtag.Input{Prefix: "tools/", Tags: []string{"v1.0.0"}, HeadTags: []string{"v1.0.0", "latest"}}, tag: "tools/v0.0.1", level: semtag.LevelPatch},
		{name: "HEAD has a non-version tag: tag it", in: semtag.Input{Tags: []string{"v0.1.0", "deploy"}, HeadTags: []string{"deploy", "v1.2"}}, tag: "v0.1.1", base: "v0.1.0", level: semtag.LevelPatch},
		{name: "conventional re-run on released HEAD: nothing", in: semtag.Input{Tags: []string{"v0.1.0"}, HeadTags: []string{"v0.1.0"}, Bump: semtag.BumpConventional, Commits: []semtag.Commit{feat}}, released: "v0.1.0", base: "v0.1.0"},

		// Rule 3: base version.
		{name: "order is semver, not lexical", in: semtag.Input{Tags: []string{"v1.9.0", "v1.10.0", "v1.2.0"}}, tag: "v1.10.1", base: "v1.10.0", level: semtag.LevelPatch},
		{name: "a lower release beats a higher pre-release", in: semtag.Input{Tags: []string{"v1.0.0", "v2.0.0-rc.1"}}, tag: "v1.0.1", base: "v1.0.0", level: semtag.LevelPatch},
		{name: "build metadata is ignored for order and plain wins a tie", in: semtag.Input{Tags: []string{"v1.2.3+zzz", "v1.2.3", "v1.2.2+b"}}, tag: "v1.2.4", base: "v1.2.3", level: semtag.LevelPatch},
		{name: "tie between build tags: smallest name", in: semtag.Input{Tags: []string{"v1.2.3+b2", "v1.2.3+b1"}}, tag: "v1.2.4", base: "v1.2.3+b1", level: semtag.LevelPatch},
		{name: "pre-release order is semver (rc.10 > rc.9 > beta)", in: semtag.Input{Tags: []string{"v1.0.0-rc.9", "v1.0.0-rc.10", "v1.0.0-beta", "v1.0.0-alpha.1"}, Bump: semtag.BumpMinor}, tag: "v1.0.0", base: "v1.0.0-rc.10", level: semtag.LevelMinor},

		// Rules 4 and 5: levels and increments.
		{name: "patch", in: semtag.Input{Tags: []string{"v1.2.3"}, Bump: semtag.BumpPatch}, tag: "v1.2.4", base: "v1.2.3", level: semtag.LevelPatch},
		{name: "minor", in: semtag.Input{Tags: []string{"v1.2.3"}, Bump: semtag.BumpMinor}, tag: "v1.3.0", base: "v1.2.3", level: semtag.LevelMinor},
		{name: "major", in: semtag.Input{Tags: []string{"v1.2.3"}, Bump: semtag.BumpMajor}, tag: "v2.0.0", base: "v1.2.3", level: semtag.LevelMajor},
		{name: "from nothing: minor", in: semtag.Input{Bump: semtag.BumpMinor}, tag: "v0.1.0", level: semtag.LevelMinor},
		{name: "from nothing: major", in: semtag.Input{Bump: semtag.BumpMajor}, tag: "v1.0.0", level: semtag.LevelMajor},
		{name: "pre-release base: patch finalizes", in: semtag.Input{Tags: []string{"v1.2.3-rc.1"}}, tag: "v1.2.3", base: "v1.2.3-rc.1", level: semtag.LevelPatch},
		{name: "pre-release base: minor finalizes when Z=0", in: semtag.Input{Tags: []string{"v1.2.0-rc.1"}, Bump: semtag.BumpMinor}, tag: "v1.2.0", base: "v1.2.0-rc.1", level: semtag.LevelMinor},
		{name: "pre-release base: minor increments when Z>0", in: semtag.Input{Tags: []string{"v1.2.3-rc.1"}, Bump: semtag.BumpMinor}, tag: "v1.3.0", base: "v1.2.3-rc.1", level: semtag.LevelMinor},
		{name: "pre-release base: major finalizes when Y=Z=0", in: semtag.Input{Tags: []string{"v2.0.0-beta.3+b9"}, Bump: semtag.BumpMajor}, tag: "v2.0.0", base: "v2.0.0-beta.3+b9", level: semtag.LevelMajor},
		{name: "pre-release base: major increments when Y>0", in: semtag.Input{Tags: []string{"v2.1.0-beta"}, Bump: semtag.BumpMajor}, tag: "v3.0.0", base: "v2.1.0-beta", level: semtag.LevelMajor},
		{name: "huge numbers increment exactly", in: semtag.Input{Tags: []string{"v1.2.99999999999999999999"}}, tag: "v1.2.100000000000000000000", base: "v1.2.99999999999999999999", level: semtag.LevelPatch},
		{name: "9 carries", in: semtag.Input{Tags: []string{"v9.9.9"}, Bump: semtag.BumpMajor}, tag: "v10.0.0", base: "v9.9.9", level: semtag.LevelMajor},

		// Rule 4: conventional commits.
		{name: "conventional: fix is patch", in: semtag.Input{Tags: []string{"v0.1.0"}, Bump: semtag.BumpConventional, Commits: []semtag.Commit{chore, fix}}, tag: "v0.1.1", base: "v0.1.0", level: semtag.LevelPatch},
		{name: "conventional: feat beats fix", in: semtag.Input{Tags: []string{"v0.1.0"}, Bump: semtag.BumpConventional, Commits: []semtag.Commit{fix, feat, fix}}, tag: "v0.2.0", base: "v0.1.0", level: semtag.LevelMinor},
		{name: "conventional: only chores: nothing", in: semtag.Input{Tags: []string{"v0.1.0"}, Bump: semtag.BumpConventional, Commits: []semtag.Commit{chore, {Message: "Merge branch 'x' into 'main'"}}}, base: "v0.1.0"},
		{name: "conventional: no commits: nothing", in: semtag.Input{Tags: []string{"v0.1.0"}, Bump: semtag.BumpConventional}, base: "v0.1.0"},
		{name: "conventional: breaking on 0.x gives v1.0.0", in: semtag.Input{Tags: []string{"v0.4.2"}, Bump: semtag.BumpConventional, Commits: []semtag.Commit{{Message: "refactor!: drop Foo"}}}, tag: "v1.0.0", base: "v0.4.2", level: semtag.LevelMajor},
		{name: "conventional: from nothing, feat", in: semtag.Input{Bump: semtag.BumpConventional, Commits: []semtag.Commit{feat}}, tag: "v0.1.0", level: semtag.LevelMinor},

		// Rule 6: output has no pre-release or build parts (covered above), and keeps the prefix.
		{name: "output keeps the prefix and drops build", in: semtag.Input{Prefix: "a/b/", Tags: []string{"a/b/v0.9.0+meta"}, Bump: semtag.BumpMinor}, tag: "a/b/v0.10.0", base: "a/b/v0.9.0+meta", level: semtag.LevelMinor},

		// Rule 7: Go major versions.
		{name: "go.mod /v2 allows v2", in: semtag.Input{Tags: []string{"v1.5.0"}, Bump: semtag.BumpMajor, GoMod: []byte("module example.com/m/v2\n")}, tag: "v2.0.0", base: "v1.5.0", level: semtag.LevelMajor},
		{name: "go.mod gopkg.in .v3 allows v3", in: semtag.Input{Tags: []string{"v2.5.0"}, Bump: semtag.BumpMajor, GoMod: []byte("module gopkg.in/yaml.v3\n")}, tag: "v3.0.0", base: "v2.5.0", level: semtag.LevelMajor},
		{name: "go.mod without suffix allows v1", in: semtag.Input{Tags: []string{"v0.5.0"}, Bump: semtag.BumpMajor, GoMod: []byte("module example.com/m\n")}, tag: "v1.0.0", base: "v0.5.0", level: semtag.LevelMajor},
		{name: "override allows a mismatch", in: semtag.Input{Tags: []string{"v1.5.0"}, Bump: semtag.BumpMajor, GoMod: []byte("module example.com/m\n"), AllowMajorMismatch: true}, tag: "v2.0.0", base: "v1.5.0", level: semtag.LevelMajor},
		{name: "no go.mod: no check", in: semtag.Input{Tags: []string{"v1.5.0"}, Bump: semtag.BumpMajor}, tag: "v2.0.0", base: "v1.5.0", level: semtag.LevelMajor},
		{name: "patch within v2 with /v2", in: semtag.Input{Tags: []string{"v2.0.0"}, GoMod: []byte("module example.com/m/v2\n")}, tag: "v2.0.1", base: "v2.0.0", level: semtag.LevelPatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := semtag.Next(tt.in)
			require.NoError(t, err, "Next(%+v)", tt.in)
			assert.Equal(t, tt.tag, d.Tag, "Next(...).Tag")
			assert.Equal(t, tt.base, d.Base, "Next(...).Base")
			assert.Equal(t, tt.released, d.Released, "Next(...).Released")
			assert.Equal(t, tt.level, d.Level, "Next(...).Level")
			if d.Tag != "" {
				assert.Equal(t, tt.in.Prefix+d.Version, d.Tag, "Tag = Prefix + Version")
			}
		})
	}
}

func TestNextBadInput(t *testing.T) {
	tests := []struct {
		name string
		in   semtag.Input
		want error
	}{
		{"unknown bump", semtag.Input{Bump: "huge"}, semtag.ErrBadBump},
		{"bump is case-sensitive", semtag.Input{Bump: "Patch"}, semtag.ErrBadBump},
		{"prefix without slash", semtag.Input{Prefix: "tools"}, semtag.ErrBadPrefix},
		{"absolute prefix", semtag.Input{Prefix: "/tools/"}, semtag.ErrBadPrefix},
		{"prefix with ..", semtag.Input{Prefix: "../tools/"}, semtag.ErrBadPrefix},
		{"prefix with empty element", semtag.Input{Prefix: "a//"}, semtag.ErrBadPrefix},
		{"prefix is only a slash", semtag.Input{Prefix: "/"}, semtag.ErrBadPrefix},
		{"v2 without /v2 in go.mod", semtag.Input{Tags: []string{"v1.5.0"}, Bump: semtag.BumpMajor, GoMod: []byte("module example.com/m\n")}, semtag.ErrModuleMajor},
		{"v3 with /v2 in go.mod", semtag.Input{Tags: []string{"v2.5.0"}, Bump: semtag.BumpMajor, GoMod: []byte("module example.com/m/v2\n")}, semtag.ErrModuleMajor},
		{"patch on v2 line without /v2", semtag.Input{Tags: []string{"v2.0.0"}, GoMod: []byte("module example.com/m\n")}, semtag.ErrModuleMajor},
		{"conventional breaking on v1 without /v2", semtag.Input{Tags: []string{"v1.0.0"}, Bump: semtag.BumpConventional, Commits: []semtag.Commit{{Message: "feat!: new API"}}, GoMod: []byte("module example.com/m\n")}, semtag.ErrModuleMajor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := semtag.Next(tt.in)
			require.ErrorIs(t, err, tt.want, "Next(%+v) = %+v", tt.in, d)
			assert.Empty(t, d.Tag, "no tag alongside an error")
		})
	}
	var me *semtag.ModuleMajorError
	_, err := semtag.Next(semtag.Input{Tags: []string{"v1.5.0"}, Bump: semtag.BumpMajor, GoMod: []byte("module example.com/m\n")})
	require.ErrorAs(t, err, &me)
	assert.Equal(t, "example.com/m", me.ModulePath)
	assert.Equal(t, "v2.0.0", me.Version)
	assert.Contains(t, err.Error(), "/v2")
}

func TestCommitLevel(t *testing.T) {
	tests := []struct {
		msg  string
		want semtag.Level
	}{
		{"fix: x", semtag.LevelPatch},
		{"FIX: x", semtag.LevelPatch},
		{"Fix(scope): x", semtag.LevelPatch},
		{"feat: x", semtag.LevelMinor},
		{"Feat(api): x\n\nbody", semtag.LevelMinor},
		{"feat!: x", semtag.LevelMajor},
		{"fix(core)!: x", semtag.LevelMajor},
		{"chore!: drop go1.20", semtag.LevelMajor},
		{"docs: x", semtag.LevelNone},
		{"chore(deps): bump", semtag.LevelNone},
		{"fix: x\n\nBREAKING CHANGE: the API moved", semtag.LevelMajor},
		{"fix: x\r\n\r\nBREAKING CHANGE: crlf", semtag.LevelMajor},
		{"docs: x\n\nBREAKING-CHANGE: gone", semtag.LevelMajor},
		{"feat: x\n\nBREAKING CHANGE #123", semtag.LevelMajor},
		{"feat: x\n\nBREAKING CHANGES: not the token", semtag.LevelMinor},
		{"feat: x\n\nBREAKING CHANGE:no space", semtag.LevelMinor},
		{"feat: x\n\n  BREAKING CHANGE: indented", semtag.LevelMinor},
		{"feat: x\n\nbreaking change: lower case", semtag.LevelMinor},
		{"BREAKING CHANGE: only a header", semtag.LevelNone},
		{"update readme\n\nBREAKING CHANGE: not conventional", semtag.LevelNone},
		{"fix:x", semtag.LevelNone},
		{"fix : x", semtag.LevelNone},
		{"fix(): x", semtag.LevelNone},
		{"fix(a)(b): x", semtag.LevelNone},
		{"fix!!: x", semtag.LevelNone},
		{"fix: ", semtag.LevelNone},
		{" fix: x", semtag.LevelNone},
		{"Merge branch 'feat: x' into 'main'", semtag.LevelNone},
		{"Revert \"feat: x\"", semtag.LevelNone},
		{"revert: feat: x", semtag.LevelNone},
		{"", semtag.LevelNone},
		{"feature: x", semtag.LevelNone},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			assert.Equal(t, tt.want, semtag.CommitLevel(tt.msg), "CommitLevel(%q)", tt.msg)
		})
	}
}

func TestParseBump(t *testing.T) {
	for _, s := range []string{"patch", "minor", "major", "conventional"} {
		b, err := semtag.ParseBump(s)
		require.NoError(t, err)
		assert.Equal(t, semtag.Bump(s), b)
	}
	_, err := semtag.ParseBump("")
	assert.True(t, errors.Is(err, semtag.ErrBadBump), "ParseBump(\"\") = %v", err)
}

func TestParse(t *testing.T) {
	tests := []struct {
		prefix, tag string
		want        string // "" = not a version tag
	}{
		{"", "v1.2.3", "v1.2.3"},
		{"", "v1.2.3-rc.1+build.5", "v1.2.3-rc.1+build.5"},
		{"", "v0.0.0", "v0.0.0"},
		{"", "1.2.3", ""},                                     // bare
		{"", "v1.2", ""},                                      // shorthand
		{"", "v1", ""},                                        // shorthand
		{"", "v1.02.3", ""},                                   // leading zero
		{"", "v1.2.3.4", ""},                                  // four parts
		{"", "V1.2.3", ""},                                    // capital V
		{"", "v1.2.3-01", ""},                                 // leading zero in a numeric pre-release
		{"", "v1.2.3 ", ""},                                   // trailing space
		{"", "release/v1.2.3", ""},                            // other prefix
		{"", "tools/v1.2.3", ""},                              // a submodule's tag
		{"tools/", "tools/v1.2.3", "v1.2.3"},                  // the submodule's own
		{"tools/", "tools/sub/v1.0.0", ""},                    // nested module
		{"tools/", "v1.2.3", ""},                              // the root's tag
		{"", "v0.0.0-20200101000000-abcdefabcdef", ""},        // pseudo-version
		{"", "v1.2.4-0.20200101000000-abcdefabcdef", ""},      // pseudo-version after v1.2.3
		{"", "v1.2.4-pre.0.20200101000000-abcdefabcdef", ""},  // pseudo-version after a pre-release
		{"", "v1.2.4-0.20200101000000-abcdefabcdef+meta", ""}, // pseudo-version with build
	}
	for _, tt := range tests {
		t.Run(tt.prefix+tt.tag, func(t *testing.T) {
			got, ok := semtag.Parse(tt.prefix, tt.tag)
			assert.Equal(t, tt.want, got, "Parse(%q, %q)", tt.prefix, tt.tag)
			assert.Equal(t, tt.want != "", ok)
		})
	}
}
