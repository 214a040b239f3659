package opskit

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Secret is a credential: an API token, a password, a webhook or upload
// secret. It is the one secret type of the whole SDK: every configuration
// field that holds a credential has this type (or an alias of it, such as
// freshdesk.Secret and release.Secret), so a string from anywhere converts
// with opskit.Secret(s).
//
// A Secret never prints: fmt (every verb), log/slog, encoding/json,
// encoding/xml and any other encoding through encoding.TextMarshaler show
// [Redacted] instead of the value (one exception: encoding/json writes a
// map key of a string type as it is, so never key a map by a Secret).
// Decoding is not redacted, so a JSON
// config file may hold a secret as a plain string. Reveal returns the value
// for the one place that must send it; Equal compares in constant time.
type Secret string

// Redacted is what a Secret prints as.
const Redacted = "REDACTED"

// ErrNoSecret is returned (wrapped, with the file or variable named) by
// SecretFromFile, SecretFromEnv and SecretFromFileOrEnv when the source
// exists but holds no secret, or when no source is given.
var ErrNoSecret = errors.New("opskit: no secret")

// maxSecretFile caps what SecretFromFile reads, so a path such as
// /dev/zero cannot exhaust memory.
const maxSecretFile = 64 << 10

// String implements fmt.Stringer without revealing the value.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer without revealing the value.
func (Secret) GoString() string { return Redacted }

// Format implements fmt.Formatter: every verb, including %d, %x and %q,
// prints Redacted.
func (Secret) Format(f fmt.State, verb rune) { io.WriteString(f, Redacted) }

// LogValue implements slog.LogValuer without revealing the value.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler: a Secret encodes as "REDACTED".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (encoding/xml, map keys,
// other encoders): a Secret encodes as REDACTED.
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Reveal returns the credential itself, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

// Equal reports whether s and other hold the same value, in time that
// depends on neither value's contents nor length: both are hashed first, and
// the two fixed-size digests are compared in constant time. An empty Secret
// equals nothing, so an unset secret cannot be satisfied by an empty one.
func (s Secret) Equal(other Secret) bool {
	if s == "" || other == "" {
		return false
	}
	a := sha256.Sum256([]byte(s))
	b := sha256.Sum256([]byte(other))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// SecretFromFile reads a secret from the file at path: its first line,
// without the line ending and surrounding white space. Later lines are
// ignored, so a rotation file that lists the current secret first (as
// examples/release-server reads it) serves a client too.
//
// Errors name the file, never its content: an error wrapping the open or
// read error (errors.Is(err, fs.ErrNotExist) for a missing file), one
// wrapping ErrNoSecret when the first line is blank, and one for a file
// larger than 64 KiB.
func SecretFromFile(path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("opskit: secret file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("opskit: secret file: %w", err)
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("opskit: secret file %s is larger than %d KiB", path, maxSecretFile>>10)
	}
	line, _, _ := bufio.NewReader(strings.NewReader(string(data))).ReadLine()
	s := strings.TrimSpace(string(line))
	if s == "" {
		return "", fmt.Errorf("%w: secret file %s is empty or starts with a blank line", ErrNoSecret, path)
	}
	return Secret(s), nil
}

// SecretFromEnv returns the value of the environment variable name, without
// surrounding white space. An unset or blank variable gives an error
// wrapping ErrNoSecret that names the variable.
func SecretFromEnv(name string) (Secret, error) {
	s := strings.TrimSpace(os.Getenv(name))
	if s == "" {
		return "", fmt.Errorf("%w: $%s is not set", ErrNoSecret, name)
	}
	return Secret(s), nil
}

// SecretFromFileOrEnv is the rule every example main follows: the secret
// comes from file when a file is named (a -secret-file flag), and from the
// environment variable env otherwise, never from a plain flag value, which
// other users could read in the process list. Errors are those of
// SecretFromFile and SecretFromEnv; with neither a file nor a variable name
// the error wraps ErrNoSecret.
func SecretFromFileOrEnv(file, env string) (Secret, error) {
	switch {
	case file != "":
		return SecretFromFile(file)
	case env != "":
		return SecretFromEnv(env)
	}
	return "", fmt.Errorf("%w: no secret file or environment variable given", ErrNoSecret)
}
