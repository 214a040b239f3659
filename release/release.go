package release

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

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
type FieldError struct {
	Fields []string // the offending field names, e.g. "product", "sha256"
	Reason string   // what is wrong, e.g. "missing or invalid fields"
}

// Error lists the fields, e.g. "release: missing or invalid fields: product".
func (e *FieldError) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = "missing or invalid fields"
	}
	return fmt.Sprintf("release: %s: %s", reason, strings.Join(e.Fields, ", "))
}

// StatusError reports an HTTP status that has no more specific error, such
// as 500 when the receiver's hook failed or 404 from a download.
type StatusError struct {
	Code    int    // the HTTP status code
	Message string // the server's "error" value, if it sent one
}

// Error gives the status and the server's message.
func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("release: http status %d", e.Code)
	}
	return fmt.Sprintf("release: http status %d: %s", e.Code, e.Message)
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
