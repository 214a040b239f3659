package opskit_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opskit/opskit"
)

// TestSecretNeverPrints: a Secret that reaches fmt (any verb), slog (text
// and JSON), encoding/json, encoding/xml or encoding.TextMarshaler prints
// as REDACTED.
func TestSecretNeverPrints(t *testing.T) {
	s := opskit.Secret("hunter2")
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("login", "token", s)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("login", "token", s, slog.Group("g", "t", s))
	type cfg struct {
		Token opskit.Secret
		Ptr   *opskit.Secret
	}
	jb, err := json.Marshal(cfg{Token: s, Ptr: &s})
	require.NoError(t, err)
	mb, err := json.Marshal(map[string]opskit.Secret{"k": s})
	require.NoError(t, err)
	xb, err := xml.Marshal(struct {
		XMLName xml.Name      `xml:"c"`
		Token   opskit.Secret `xml:"token,attr"`
		Body    opskit.Secret
	}{Token: s, Body: s})
	require.NoError(t, err)
	tb, err := s.MarshalText()
	require.NoError(t, err)
	outs := map[string]string{
		"Sprint":      fmt.Sprint(s),
		"verbs":       fmt.Sprintf("%v %s %q %x %X %d %#v %+v %10s %-3v", s, s, s, s, s, s, s, s, s, s),
		"in a struct": fmt.Sprintf("%v %+v %#v", cfg{Token: s}, cfg{Token: s}, cfg{Token: s}),
		"pointer":     fmt.Sprintf("%v %s", &s, &s),
		"in an error": fmt.Errorf("login with %v failed", s).Error(),
		"slog text":   text.String(),
		"slog json":   js.String(),
		"json":        string(jb),
		"json map":    string(mb),
		"xml":         string(xb),
		"MarshalText": string(tb),
	}
	for name, out := range outs {
		assert.NotContains(t, out, "hunter2", "%s leaked the secret: %q", name, out)
		assert.Contains(t, out, opskit.Redacted, "%s: %q", name, out)
	}
	assert.Equal(t, `{"Token":"REDACTED","Ptr":"REDACTED"}`, string(jb))
	assert.Equal(t, "hunter2", s.Reveal())
}

// TestSecretDecodesFromConfig: a config file can still hold the secret as a
// plain JSON string; only encoding redacts.
func TestSecretDecodesFromConfig(t *testing.T) {
	var c struct{ Token opskit.Secret }
	require.NoError(t, json.Unmarshal([]byte(`{"Token":"hunter2"}`), &c))
	assert.Equal(t, "hunter2", c.Token.Reveal())
}

func TestSecretEqual(t *testing.T) {
	tests := []struct {
		a, b opskit.Secret
		want bool
	}{
		{"s3cret", "s3cret", true},
		{"s3cret", "s3cres", false},
		{"s3cre", "s3cret", false},
		{"s3cret", "s3crett", false},
		{"", "", false}, // an unset secret matches nothing, not even another unset one
		{"x", "", false},
		{"", "x", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.a.Equal(tt.b), "Secret(%q).Equal(%q)", tt.a.Reveal(), tt.b.Reveal())
	}
}

func TestSecretFromFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	tests := []struct {
		name, content, want string
	}{
		{"plain", "tok-1", "tok-1"},
		{"newline", "tok-1\n", "tok-1"},
		{"crlf and spaces", "  tok-1 \r\n", "tok-1"},
		{"rotation file: the first line is the current secret", "current\nprevious\n", "current"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := opskit.SecretFromFile(write(strings.ReplaceAll(tt.name, " ", "_"), tt.content))
			require.NoError(t, err)
			assert.Equal(t, tt.want, s.Reveal())
		})
	}
	t.Run("empty", func(t *testing.T) {
		p := write("empty", "\n  \n")
		_, err := opskit.SecretFromFile(p)
		assert.ErrorIs(t, err, opskit.ErrNoSecret)
		assert.ErrorContains(t, err, p)
	})
	t.Run("missing", func(t *testing.T) {
		p := filepath.Join(dir, "absent")
		_, err := opskit.SecretFromFile(p)
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.ErrorContains(t, err, "opskit: secret file")
	})
	t.Run("too large", func(t *testing.T) {
		p := write("large", strings.Repeat("x", 1<<20))
		_, err := opskit.SecretFromFile(p)
		assert.ErrorContains(t, err, "larger than")
		assert.NotContains(t, err.Error(), "xxxx")
	})
}

func TestSecretFromEnv(t *testing.T) {
	t.Setenv("OPSKIT_TEST_SECRET", " tok-2\n")
	s, err := opskit.SecretFromEnv("OPSKIT_TEST_SECRET")
	require.NoError(t, err)
	assert.Equal(t, "tok-2", s.Reveal())

	t.Setenv("OPSKIT_TEST_SECRET", "")
	_, err = opskit.SecretFromEnv("OPSKIT_TEST_SECRET")
	assert.ErrorIs(t, err, opskit.ErrNoSecret)
	assert.ErrorContains(t, err, "$OPSKIT_TEST_SECRET")
	os.Unsetenv("OPSKIT_TEST_SECRET")
	_, err = opskit.SecretFromEnv("OPSKIT_TEST_SECRET")
	assert.ErrorIs(t, err, opskit.ErrNoSecret)
}

func TestSecretFromFileOrEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tok")
	require.NoError(t, os.WriteFile(p, []byte("from-file\n"), 0o600))
	t.Setenv("OPSKIT_TEST_SECRET", "from-env")

	s, err := opskit.SecretFromFileOrEnv(p, "OPSKIT_TEST_SECRET")
	require.NoError(t, err)
	assert.Equal(t, "from-file", s.Reveal(), "the file wins when it is named")

	s, err = opskit.SecretFromFileOrEnv("", "OPSKIT_TEST_SECRET")
	require.NoError(t, err)
	assert.Equal(t, "from-env", s.Reveal())

	t.Setenv("OPSKIT_TEST_SECRET", "")
	_, err = opskit.SecretFromFileOrEnv("", "OPSKIT_TEST_SECRET")
	assert.True(t, errors.Is(err, opskit.ErrNoSecret), "err = %v; want ErrNoSecret", err)
	_, err = opskit.SecretFromFileOrEnv("", "")
	assert.ErrorIs(t, err, opskit.ErrNoSecret)
}
