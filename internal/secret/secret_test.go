package secret

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestEqual(t *testing.T) {
	tests := []struct {
		got, want string
		ok        bool
	}{
		{"s3cret", "s3cret", true},
		{"s3cret", "s3cres", false},
		{"s3cre", "s3cret", false},
		{"s3crett", "s3cret", false},
		{"", "", false},
		{"x", "", false},
	}
	for _, tt := range tests {
		if got := Equal(tt.got, tt.want); got != tt.ok {
			t.Errorf("Equal(%q, %q) = %v; want %v", tt.got, tt.want, got, tt.ok)
		}
	}
}

func TestAnyEqual(t *testing.T) {
	if !AnyEqual("new", "old", "new") {
		t.Error(`AnyEqual("new", "old", "new") = false; want true (rotation)`)
	}
	if AnyEqual("other", "old", "new") {
		t.Error(`AnyEqual("other", "old", "new") = true; want false`)
	}
	if AnyEqual("x") {
		t.Error(`AnyEqual("x") with no candidates = true; want false`)
	}
}

func TestStringNeverPrints(t *testing.T) {
	s := String("hunter2")
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("login", "token", s)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %#v %+v", s, s, s, s), buf.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked in %q", out)
		}
	}
	if s.Reveal() != "hunter2" {
		t.Errorf("Reveal() = %q; want the value", s.Reveal())
	}
}
