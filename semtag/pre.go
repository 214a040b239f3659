package semtag

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/mod/semver"
)

// ErrBadPre is returned for a pre-release identifier that CheckPre refuses.
var ErrBadPre = errors.New("semtag: bad pre-release identifier")

// preID is one SemVer identifier made of letters, digits and hyphens that
// is not purely numeric (a numeric one would compare as a number).
var preID = regexp.MustCompile(`^[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*$`)

// CheckPre returns an error wrapping ErrBadPre unless pre is "" (no
// pre-release) or one SemVer identifier that is not purely numeric, such
// as "rc", "beta" or "alpha": ASCII letters, digits and hyphens, no dots.
func CheckPre(pre string) error {
	if pre == "" || preID.MatchString(pre) {
		return nil
	}
	return fmt.Errorf("%w %q: want one identifier of letters, digits and hyphens, such as rc or beta", ErrBadPre, pre)
}

// preNumber returns N when version is core + "-" + pre + "." + N (build
// metadata ignored) with N a decimal number without leading zeros.
func preNumber(version, core, pre string) (string, bool) {
	v := version
	if i := strings.IndexByte(v, '+'); i >= 0 {
		v = v[:i]
	}
	n, ok := strings.CutPrefix(v, core+"-"+pre+".")
	if !ok || n == "" || (len(n) > 1 && n[0] == '0') || strings.Trim(n, "0123456789") != "" {
		return "", false
	}
	return n, true
}

// preVersion applies rule 8: core (vX.Y.Z) + "-" + pre + "." + N, with N
// one more than the highest N among the tags for prefix (1 when none).
func preVersion(prefix, pre, core string, tags []string) string {
	best := "0"
	for _, t := range tags {
		v, ok := Parse(prefix, t)
		if !ok {
			continue
		}
		if n, ok := preNumber(v, core, pre); ok && (len(n) > len(best) || len(n) == len(best) && n > best) {
			best = n
		}
	}
	return core + "-" + pre + "." + incDecimal(best)
}

// releasedOn is rule 2, extended by rule 8: without pre, the first
// release tag on HEAD; with pre, a release tag or else the highest
// pre-release of that channel (vX.Y.Z-pre.N) on HEAD.
func releasedOn(prefix, pre string, headTags []string) string {
	if r := Released(prefix, headTags); r != "" || pre == "" {
		return r
	}
	var pres []string
	for _, t := range headTags {
		v, ok := Parse(prefix, t)
		if !ok {
			continue
		}
		core := v
		if i := strings.IndexAny(core, "-+"); i >= 0 {
			core = core[:i]
		}
		if _, ok := preNumber(v, core, pre); ok {
			pres = append(pres, t)
		}
	}
	if len(pres) == 0 {
		return ""
	}
	sort.Slice(pres, func(i, j int) bool {
		vi, _ := Parse(prefix, pres[i])
		vj, _ := Parse(prefix, pres[j])
		if c := semver.Compare(vi, vj); c != 0 {
			return c > 0
		}
		return pres[i] < pres[j]
	})
	return pres[0]
}
