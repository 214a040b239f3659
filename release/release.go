package release

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/opskit/opskit"
)

// Secret is opskit.Secret, the SDK's one credential type, here a shared
// upload secret. It never prints: fmt, slog and encoders show it as
// REDACTED. It is an alias, so release.Secret(s) and opskit.Secret(s) are
// the same value. The Receiver compares secrets in constant time.
type Secret = opskit.Secret

// Metadata describes a release: the form fields that travel with the file.
// Product and Version are required; the rest is optional.
type Metadata struct {
	Product  string // e.g. the CI project name; see ValidName
	Version  string // e.g. "1.4.2"; see ValidName
	Tag      string // the git tag, if any
	Build    string // the CI build or pipeline number
	Revision string // a revision counter, as the build server numbers it
	Commit   string // the commit hash
	Log      string // the changelog; any text, including newlines and quotes
	RPMs     bool   // the release carries RPM packages (form value "1")
}

// Release is a release stored by a Receiver, as handed to its Hook.
type Release struct {
	Metadata
	SHA256  string // lowercase hex checksum of the tarball
	MD5     string // lowercase hex MD5, set only when a legacy client sent one
	Size    int64  // tarball size in bytes
	Dir     string // <Dir>/<product>/<version>
	Tarball string // Dir/release.tgz
	EnvFile string // Dir/release.env
}

// Receipt is the receiver's confirmation of an upload.
type Receipt struct {
	Product string `json:"product"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	// Created is true when this upload stored the release (201) and false
	// when the same release was already stored (200).
	Created bool `json:"-"`
}

// Errors returned by Uploader and Fetch. Test for them with errors.Is.
var (
	// ErrChecksumMismatch means the bytes received do not have the checksum
	// that was sent or expected; nothing was stored.
	ErrChecksumMismatch = errors.New("release: checksum mismatch")
	// ErrConflict means this product/version is already stored with other
	// content; the stored release was left untouched.
	ErrConflict = errors.New("release: version exists with other content")
	// ErrUnauthorized means the receiver did not accept the secret.
	ErrUnauthorized = errors.New("release: unauthorized")
	// ErrTooLarge means the upload exceeds the receiver's MaxSize.
	ErrTooLarge = errors.New("release: too large")
)

// FieldError reports form fields that are missing or invalid. The receiver
// answers it with status 400, and Uploader returns it for that status.
// Uploader (through Metadata.Validate) and Fetch also return it, with Rules
// set, when they refuse their arguments before sending anything.
type FieldError struct {
	Fields []string // the offending field names, e.g. "product", "sha256"
	Reason string   // what is wrong, e.g. "missing or invalid fields"
	// Rules, when set, has one entry per field of Fields (same index): a
	// phrase that starts with the field's name and says which rule its
	// value broke, e.g. `product "../etc" must start with a letter or
	// digit, not '.'`. A receiver's 400 answer carries no Rules.
	Rules []string
}

// Error lists the fields, e.g. "release: missing or invalid fields: product",
// or, with Rules, the rules: "release: invalid metadata: version is required".
func (e *FieldError) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = "missing or invalid fields"
	}
	if len(e.Rules) > 0 && len(e.Rules) == len(e.Fields) {
		return fmt.Sprintf("release: %s: %s", reason, strings.Join(e.Rules, "; "))
	}
	return fmt.Sprintf("release: %s: %s", reason, strings.Join(e.Fields, ", "))
}

// StatusError reports an HTTP status that has no more specific error, such
// as 500 when the receiver's hook failed or 404 from a download.
type StatusError struct {
	Code    int    // the HTTP status code
	Message string // the server's "error" value, if it sent one
	Method  string // the request's method, e.g. "POST"
	// URL is the request's URL without credentials: no user info, and every
	// query value replaced by REDACTED.
	URL string
}

// Error gives the request, the status and the server's message, e.g.
// "release: GET https://updates.example/releases/app/1.4.2/release.tgz: http status 404".
func (e *StatusError) Error() string {
	req := ""
	if e.Method != "" || e.URL != "" {
		req = strings.TrimSpace(e.Method+" "+e.URL) + ": "
	}
	if e.Message == "" {
		return fmt.Sprintf("release: %shttp status %d", req, e.Code)
	}
	return fmt.Sprintf("release: %shttp status %d: %s", req, e.Code, e.Message)
}

// redactURL returns raw without what may be a credential: the user info
// goes, every query value becomes REDACTED, the fragment goes.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" {
		pairs := strings.Split(u.RawQuery, "&")
		for i, p := range pairs {
			if k, _, ok := strings.Cut(p, "="); ok {
				pairs[i] = k + "=" + opskit.Redacted
			}
		}
		u.RawQuery = strings.Join(pairs, "&")
	}
	return u.String()
}

// redactURLError removes credentials from the URL a *url.Error (what
// http.Client.Do returns) carries, and returns err.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactURL(ue.URL)
	}
	return err
}

// Limits of Metadata fields, as the Receiver enforces them.
const (
	maxNameLen = 128
)

// Validate checks md against the Receiver's rules, so a client learns of a
// bad release before sending it. It returns nil or a *FieldError whose
// Rules say, for each bad field, which rule it broke:
//
//   - Product and Version: required; 1 to 128 bytes of ASCII letters,
//     digits and ". _ + ~ -"; starting with a letter or digit; no "..".
//     See ValidName.
//   - Tag, Build, Revision, Commit: at most 4096 bytes of valid UTF-8
//     without control characters.
//   - Log: at most 1 MiB of valid UTF-8 without NUL.
func (md Metadata) Validate() error {
	fe := &FieldError{Reason: "invalid metadata"}
	add := func(field, rule string) {
		if rule != "" {
			fe.Fields = append(fe.Fields, field)
			fe.Rules = append(fe.Rules, field+rule)
		}
	}
	add("product", nameRule(md.Product))
	add("version", nameRule(md.Version))
	add("tag", textRule(md.Tag, maxFieldSize, false))
	add("build", textRule(md.Build, maxFieldSize, false))
	add("revision", textRule(md.Revision, maxFieldSize, false))
	add("commit", textRule(md.Commit, maxFieldSize, false))
	add("log", textRule(md.Log, maxLogSize, true))
	if len(fe.Fields) > 0 {
		return fe
	}
	return nil
}

// nameRule returns the rule of ValidName that s breaks, as a phrase to
// follow the field's name, or "".
func nameRule(s string) string {
	isAlnum := func(b byte) bool {
		return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
	}
	switch {
	case s == "":
		return " is required"
	case len(s) > maxNameLen:
		return fmt.Sprintf(" %s is %d bytes, at most %d", quoteShort(s), len(s), maxNameLen)
	case !isAlnum(s[0]):
		return fmt.Sprintf(" %s must start with a letter or digit, not %s", quoteShort(s), byteName(s[0]))
	}
	for i := 1; i < len(s); i++ {
		if b := s[i]; !isAlnum(b) && !strings.ContainsRune("._+~-", rune(b)) {
			return fmt.Sprintf(" %s has %s at index %d (allowed: letters, digits and . _ + ~ -)", quoteShort(s), byteName(b), i)
		}
	}
	if strings.Contains(s, "..") {
		return fmt.Sprintf(" %s contains \"..\"", quoteShort(s))
	}
	return ""
}

// textRule returns the rule that the free-text value s breaks, or "".
// Control characters other than NUL are allowed when multiline is set.
func textRule(s string, max int, multiline bool) string {
	switch {
	case len(s) > max:
		return fmt.Sprintf(" is %d bytes, at most %d", len(s), max)
	case !utf8.ValidString(s):
		return " is not valid UTF-8"
	}
	for i, r := range s {
		if multiline && r == 0 {
			return fmt.Sprintf(" has NUL at index %d", i)
		}
		if !multiline && (r < 0x20 || r == 0x7f) {
			return fmt.Sprintf(" has control character %U at index %d", r, i)
		}
	}
	return ""
}

// byteName shows one byte of a name: '/' for ASCII, 0xff otherwise.
func byteName(b byte) string {
	if b < utf8.RuneSelf {
		return fmt.Sprintf("%q", rune(b))
	}
	return fmt.Sprintf("byte %#x", b)
}

// quoteShort quotes s, shortened to its first 40 bytes.
func quoteShort(s string) string {
	if len(s) <= 40 {
		return fmt.Sprintf("%q", s)
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", s[:cut])
}

// checksumRule says what is wrong with a hex checksum argument that should
// have n hex digits, or "".
func checksumRule(s string, n int) string {
	if s == "" {
		return fmt.Sprintf(" is empty, want %d hex characters", n)
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(s[i])) {
			return fmt.Sprintf(" %s has non-hex character %s at index %d", quoteShort(s), byteName(s[i]), i)
		}
	}
	if len(s) != n {
		return fmt.Sprintf(" %s has length %d, want %d hex characters", quoteShort(s), len(s), n)
	}
	return ""
}

// namePattern is what product names and versions must match: a letter or
// digit first, then letters, digits, '.', '_', '+', '~' or '-', at most 128
// bytes. This excludes '/', a leading '-' or '.', NUL, spaces and control
// characters; ".." is refused separately.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$`)

// ValidName reports whether s is acceptable as a product name or a version:
// 1 to 128 bytes of ASCII letters, digits and ". _ + ~ -", starting with a
// letter or digit and never containing "..". Such a name is safe as a single
// path element and as a shell word.
func ValidName(s string) bool {
	return namePattern.MatchString(s) && !strings.Contains(s, "..")
}

// hexPattern matches a lowercase or uppercase hex string.
var hexPattern = regexp.MustCompile(`^[0-9a-fA-F]+$`)

func validHex(s string, n int) bool {
	return len(s) == n && hexPattern.MatchString(s)
}
