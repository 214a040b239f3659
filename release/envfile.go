package release

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// shellQuote returns s as one single-quoted POSIX shell word. Inside single
// quotes the shell expands nothing ($, backquote, backslash and newline are
// literal); a quote inside s is written as a closing quote, a backslash-
// escaped quote and an opening quote.
// NUL cannot occur: the receiver refuses it in every field.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// envFile renders release.env: one NAME='value' line per variable, every
// value single-quoted, so that `. release.env` in a POSIX shell only assigns
// variables, whatever the changelog contains.
func envFile(r Release) []byte {
	rpms := "0"
	if r.RPMs {
		rpms = "1"
	}
	vars := [][2]string{
		{"PRODUCT", r.Product},
		{"VERSION", r.Version},
		{"TAG", r.Tag},
		{"BUILD", r.Build},
		{"REVISION", r.Revision},
		{"COMMIT", r.Commit},
		{"RPMS", rpms},
		{"SIZE", strconv.FormatInt(r.Size, 10)},
		{"SHA256", r.SHA256},
		{"MD5", r.MD5},
		{"LOG", r.Log},
	}
	var b bytes.Buffer
	b.WriteString("# release.env written by github.com/opskit/opskit/release; every value is single-quoted.\n")
	for _, v := range vars {
		b.WriteString(v[0])
		b.WriteByte('=')
		b.WriteString(shellQuote(v[1]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// parseEnvFile reads back a release.env written by envFile.
func parseEnvFile(data []byte) (Release, error) {
	vars := map[string]string{}
	s := string(data)
	for len(s) > 0 {
		if s[0] == '#' || s[0] == '\n' {
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				break
			}
			s = s[i+1:]
			continue
		}
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(rest, "'") {
			return Release{}, errors.New("malformed line")
		}
		rest = rest[1:]
		var v strings.Builder
		for {
			i := strings.IndexByte(rest, '\'')
			if i < 0 {
				return Release{}, errors.New("unterminated quote")
			}
			v.WriteString(rest[:i])
			rest = rest[i+1:]
			if strings.HasPrefix(rest, `\''`) { // a quote inside the value
				v.WriteByte('\'')
				rest = rest[3:]
				continue
			}
			break
		}
		if !strings.HasPrefix(rest, "\n") {
			return Release{}, errors.New("malformed line")
		}
		vars[name] = v.String()
		s = rest[1:]
	}
	size, err := strconv.ParseInt(vars["SIZE"], 10, 64)
	if err != nil {
		return Release{}, errors.New("bad SIZE")
	}
	return Release{
		Metadata: Metadata{Product: vars["PRODUCT"], Version: vars["VERSION"], Tag: vars["TAG"], Build: vars["BUILD"],
			Revision: vars["REVISION"], Commit: vars["COMMIT"], Log: vars["LOG"], RPMs: vars["RPMS"] == "1"},
		SHA256: vars["SHA256"], MD5: vars["MD5"], Size: size,
	}, nil
}
