package freshdesk

import "strings"

// nextLink returns the target of the rel="next" entry of a Link header
// (RFC 8288), or "" when there is none. It is lenient about what Freshdesk
// does not promise: spacing around ";" and "=", quoting of the rel value,
// letter case, several rel values in one entry, and commas inside <...>.
func nextLink(header string) string {
	s := header
	for {
		lt := strings.IndexByte(s, '<')
		if lt < 0 {
			return ""
		}
		gt := strings.IndexByte(s[lt+1:], '>')
		if gt < 0 {
			return ""
		}
		target := strings.TrimSpace(s[lt+1 : lt+1+gt])
		if strings.IndexByte(target, '<') >= 0 { // "<a<b>": the target starts at the last '<'
			s = s[lt+1:]
			continue
		}
		rest := s[lt+1+gt+1:]
		// The parameters run to the next entry, which starts at a '<'
		// after a ','; a quoted parameter value may itself hold either.
		params, next := splitParams(rest)
		if target != "" && hasRelNext(params) {
			return target
		}
		s = next
	}
}

// splitParams splits s at the first ',' outside quotes that is followed by
// a '<' (after optional spaces), returning the parameters and the remainder.
func splitParams(s string) (params, rest string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			inQuote = !inQuote
		case c == '\\' && inQuote:
			i++
		case c == ',' && !inQuote:
			if strings.HasPrefix(strings.TrimLeft(s[i+1:], " \t"), "<") {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

// hasRelNext reports whether a Link entry's parameters hold rel=next.
func hasRelNext(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, value, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
			continue
		}
		value = strings.Trim(strings.TrimSpace(value), `"'`)
		for v := range strings.FieldsSeq(value) {
			if strings.EqualFold(v, "next") {
				return true
			}
		}
	}
	return false
}
