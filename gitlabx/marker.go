package gitlabx

import (
	"regexp"
	"strings"
)

// markerRe matches a hidden marker, <!-- opskit:<kind>=<value> -->.
var markerRe = regexp.MustCompile(`<!-- opskit:([a-z0-9][a-z0-9_.-]*)=([^\s>]*) -->`)

// marker returns the hidden HTML comment that identifies a note, issue or
// description written by opskit: <!-- opskit:<kind>=<value> -->. GitLab
// renders nothing for it. kind is a lowercase word such as "version-check";
// value must not contain spaces or '>' (they are replaced by '_').
func marker(kind, value string) string {
	value = strings.Map(func(r rune) rune {
		if r == '>' || r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return '_'
		}
		return r
	}, value)
	return "<!-- opskit:" + kind + "=" + value + " -->"
}

// findMarker returns the value of the first marker of the given kind in text.
func findMarker(text, kind string) (value string, ok bool) {
	for _, m := range markerRe.FindAllStringSubmatch(text, -1) {
		if m[1] == kind {
			return m[2], true
		}
	}
	return "", false
}

// hasMarker reports whether text carries exactly the marker (kind, value).
func hasMarker(text, kind, value string) bool {
	return strings.Contains(text, marker(kind, value))
}
