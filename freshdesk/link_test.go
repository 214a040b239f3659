package freshdesk

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/opskit/opskit/internal/fixtures"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNextLink(t *testing.T) {
	const u = "https://acme.freshdesk.com/api/v2/tickets/4711/conversations?per_page=3&page=2"
	tests := []struct {
		name, header, want string
	}{
		{"fixture form", `<` + u + `>; rel="next"`, u},
		{"no spaces", `<` + u + `>;rel="next"`, u},
		{"extra spaces", `  < ` + u + ` >  ;   rel = "next"  `, u},
		{"unquoted", `<` + u + `>; rel=next`, u},
		{"single quotes", `<` + u + `>; rel='next'`, u},
		{"upper case", `<` + u + `>; REL="NEXT"`, u},
		{"several rels", `<` + u + `>; rel="last next"`, u},
		{"after prev", `<https://x/p1>; rel="prev", <` + u + `>; rel="next"`, u},
		{"before last", `<` + u + `>; rel="next",<https://x/p9>; rel="last"`, u},
		{"comma inside url", `<https://x/a?b=1,2>; rel="next"`, "https://x/a?b=1,2"},
		{"other params", `<` + u + `>; title="a, <b>; rel=prev"; rel="next"`, u},
		{"only prev", `<https://x/p1>; rel="prev"`, ""},
		{"empty", ``, ""},
		{"no brackets", u + `; rel="next"`, ""},
		{"unterminated", `<` + u + `; rel="next"`, ""},
		{"empty target", `<>; rel="next"`, ""},
		{"relnext substring is not next", `<` + u + `>; rel="nextpage"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, nextLink(tt.header), "nextLink(%q)", tt.header)
		})
	}
}

func TestNextLinkFixtures(t *testing.T) {
	p1, err := fixtures.FreshdeskHeaders("conversations_page1")
	require.NoError(t, err)
	assert.Equal(t, "https://acme.freshdesk.com/api/v2/tickets/4711/conversations?per_page=3&page=2", nextLink(p1.Headers["Link"]))
	p2, err := fixtures.FreshdeskHeaders("conversations_page2")
	require.NoError(t, err)
	assert.Empty(t, nextLink(p2.Headers["Link"]), "the last page has no Link header")
}

func FuzzNextLink(f *testing.F) {
	for _, s := range []string{
		`<https://acme.freshdesk.com/api/v2/tickets/4711/conversations?per_page=3&page=2>; rel="next"`,
		`<a>; rel="prev", <b>; rel=next`, `<a,b>;rel='next'`, `<`, `>`, `"`, `<a>; title="x\"y"; rel=next`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got := nextLink(h)
		if got == "" {
			return
		}
		// The target is always the text of one <...> of the header, and an
		// entry naming it with rel=next exists.
		if !strings.Contains(h, got) || strings.ContainsAny(got, "<>") {
			t.Fatalf("nextLink(%q) = %q: not a bracketed target of the header", h, got)
		}
		if !strings.Contains(strings.ToLower(h), "next") {
			t.Fatalf("nextLink(%q) = %q without any rel=next", h, got)
		}
	})
}

func TestDecodeAPIError(t *testing.T) {
	validation, err := fixtures.Freshdesk("error_validation")
	require.NoError(t, err)
	unauth, err := fixtures.Freshdesk("error_unauthenticated")
	require.NoError(t, err)
	tests := []struct {
		name      string
		status    int
		body      string
		code      string
		field     string
		msg       string
		nerrs     int
		is        error
		errSubstr string
	}{
		{"validation fixture", 400, string(validation), "missing_field", "body", "It should be a/an String", 2, nil, "missing_field (body)"},
		{"unauthenticated fixture", 401, string(unauth), "invalid_credentials", "", "You have to be logged in to perform this action.", 0, ErrUnauthorized, "invalid_credentials"},
		{"empty 404", 404, "", "", "", "", 0, ErrNotFound, "404 not found"},
		{"html body", 502, "<html>bad gateway</html>", "", "", "", 0, nil, "502 bad gateway"},
		{"numeric code", 400, `{"code": 42, "message": true}`, "42", "", "true", 0, nil, "42 true"},
		{"errors not an array", 400, `{"description":"Validation failed","errors":{"a":1}}`, "", "", "", 0, nil, "validation failed"},
		{"both shapes", 403, `{"code":"access_denied","message":"No","errors":[{"field":"x","code":"invalid_field"}]}`, "access_denied", "x", "No", 1, ErrForbidden, "invalid_field (x)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := decodeAPIError("GET", "/api/v2/tickets/4711", tt.status, []byte(tt.body))
			assert.Equal(t, tt.status, e.StatusCode)
			assert.Equal(t, tt.code, e.Code, "Code")
			assert.Equal(t, tt.field, e.Field, "Field")
			assert.Equal(t, tt.msg, e.Message, "Message")
			assert.Len(t, e.Errors, tt.nerrs)
			if tt.is != nil {
				assert.ErrorIs(t, e, tt.is)
			}
			assert.Contains(t, strings.ToLower(e.Error()), strings.ToLower(tt.errSubstr))
			assert.True(t, strings.HasPrefix(e.Error(), "freshdesk: "), "message %q lacks the package prefix", e.Error())
			assert.False(t, strings.HasSuffix(e.Error(), "."), "message %q ends in punctuation", e.Error())
		})
	}
}

func FuzzDecodeAPIError(f *testing.F) {
	for _, name := range []string{"error_validation", "error_unauthenticated"} {
		b, err := fixtures.Freshdesk(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(400, b)
	}
	f.Add(429, []byte(`{"errors":[null,1,{"code":["x"]}]}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := decodeAPIError("POST", "/api/v2/tickets/1/notes", status, body)
		msg := e.Error()
		if !strings.HasPrefix(msg, "freshdesk: POST /api/v2/tickets/1/notes: ") {
			t.Fatalf("Error() = %q", msg)
		}
		// Whatever the body says must be found in the typed fields.
		var probe struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.Code != "" && e.Code != probe.Code {
			t.Fatalf("Code = %q; body has code %q", e.Code, probe.Code)
		}
	})
}

func TestAttachmentSizeFields(t *testing.T) {
	tests := []struct {
		json string
		want int64
	}{
		{`{"id":1,"name":"a","size":94511}`, 94511},
		{`{"id":1,"name":"a","file_size":1024}`, 1024},
		{`{"id":1,"name":"a","size":7,"file_size":9}`, 7},
		{`{"id":1,"name":"a"}`, 0},
	}
	for _, tt := range tests {
		var a Attachment
		require.NoError(t, json.Unmarshal([]byte(tt.json), &a), tt.json)
		assert.Equal(t, tt.want, a.Size, "size of %s", tt.json)
		assert.Equal(t, "a", a.Name)
	}
}

func TestRetryAfter(t *testing.T) {
	now := mustTime(t, "2026-03-02T10:00:00Z")
	assert.Equal(t, 37*seconds, retryAfter("37", now))
	assert.Equal(t, 0*seconds, retryAfter("0", now))
	assert.Equal(t, 30*seconds, retryAfter("Mon, 02 Mar 2026 10:00:30 GMT", now))
	assert.Equal(t, 1*seconds, retryAfter("soon", now))
	assert.Equal(t, 1*seconds, retryAfter("", now))
}
