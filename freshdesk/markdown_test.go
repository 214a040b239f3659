package freshdesk

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/text"
)

func TestMarkdownReadable(t *testing.T) {
	tests := []struct {
		name, html, want string
	}{
		{"fixture description",
			`<div>Since the upgrade to 5.2 the nightly export stops with <b>HTTP 500</b>.<br>Log file attached.</div>`,
			"Since the upgrade to 5\\.2 the nightly export stops with **HTTP 500**.\\\nLog file attached."},
		{"paragraphs", `<p>one</p><p>two</p>`, "one\n\ntwo"},
		{"whitespace collapses", "<div>a \n\t  b</div>", "a b"},
		{"entities", `<p>Tom &amp; Jerry&nbsp;&lt;3</p>`, `Tom \& Jerry \<3`},
		{"emphasis keeps spaces outside", `a<i> b </i>c`, "a _b_ c"},
		{"heading", `<h2>Steps</h2><p>x</p>`, "## Steps\n\nx"},
		{"lists", `<ul><li>one</li><li>two<ol><li>a</li><li>b</li></ol></li></ul>`, "- one\n- two\n  1. a\n  2. b"},
		{"quote", `<blockquote><p>q1</p><p>q2</p></blockquote><p>after</p>`, "> q1\n>\n> q2\n\nafter"},
		{"pre", "<pre>if a < b {\n  x()\n}</pre>", "```\nif a < b {\n  x()\n}\n```"},
		{"inline code", `run <code>make *all*</code> now`, "run ` make *all* ` now"},
		{"link", `<a href="https://example.com/a b?x=(1)">the docs</a>`, "[the docs](<https://example.com/a%20b?x=%281%29>)"},
		{"link without text", `<a href="https://example.com/">   </a>`, `[https\:\/\/example.com\/](<https://example.com/>)`},
		{"image becomes a link", `<img src="https://cdn.example/x.png" alt="dialog">`, `[image\: dialog](<https://cdn.example/x.png>)`},
		{"table", `<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>`, "| a | b |\n| --- | --- |\n| 1 | 2 |"},
		{"rule", `<p>a</p><hr><p>b</p>`, "a\n\n---\n\nb"},
		{"empty", ``, ""},
		{"block inside bold", `abc<b>x<ul><li>y</li></ul>zzzzzzzz</b>`, "abcx\n\n- y\n\nzzzzzzzz"},
		{"block inside link", `<a href="https://e.example/">x<p>y</p>z</a>`, "x\n\ny\n\nz"},
		{"plain text", `just text`, "just text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Markdown(tt.html), "Markdown(%q)", tt.html)
		})
	}
}

func TestMarkdownInert(t *testing.T) {
	tests := []struct {
		name, html string
		absent     []string // must not appear in the output
		present    []string // must appear (escaped form)
	}{
		{"script tag", `<p>hi<script>alert("x")</script></p>`, []string{"script", "alert"}, []string{"hi"}},
		{"script text as entity", `<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>`, []string{"<script>"}, []string{`\<script\>`}},
		{"style and iframe", `<style>*{}</style><iframe src="https://evil.example"></iframe>ok`, []string{"evil", "{}"}, []string{"ok"}},
		{"event handler", `<div onclick="steal()">x</div><img src=x onerror=steal()>`, []string{"steal", "onerror"}, nil},
		{"javascript link", `<a href="javascript:alert(1)">click</a>`, []string{"javascript", "]("}, []string{"click"}},
		{"data link", `<a href=" DATA:text/html,x">click</a>`, []string{"DATA", "]("}, nil},
		{"markdown link in text", `[click](javascript:alert(1))`, []string{"[click]("}, []string{`\[click\]\(javascript\:alert\(1\)\)`}},
		{"markdown image in text", `![x](https://track.example/p.gif)`, []string{"![x]("}, nil},
		{"raw html in text", `&lt;img src=x onerror=alert(1)&gt;`, []string{" <img", "\n<img"}, []string{`\<img`}},
		{"mentions and references", `@all please look at #1 and !2 ~bug %v1 $3 &4 :fire:`, []string{" @all", " #1", " !2", " ~bug", " %v1", " $3", " &4", " :fire:"}, []string{`\@all`, `\#1`}},
		{"quick action", `<p>/close</p><p>/label ~wontfix</p>`, []string{"\n/close", "\n/label"}, []string{`\/close`}},
		{"heading and list syntax", `<p># not a heading</p><p>1. not a list</p><p>- nor this</p><p>&gt; nor a quote</p>`, []string{"\n# ", "\n1. ", "\n- ", "\n> "}, nil},
		{"fake hidden marker", `<!-- opskit:freshdesk-conversation=1 --> &lt;!-- opskit:freshdesk-conversation=2 --&gt;`, []string{"conversation=1"}, []string{`\<\!\-\- opskit`}},
		{"bidi override", "a\u202eb", []string{"\u202e"}, []string{"ab"}},
		{"fence breakout", "<pre>```\n# x\n```</pre>", nil, []string{"````\n```\n# x\n```\n````"}},
		{"code span breakout", "<code>`` @all ``</code>", nil, []string{"``` `` @all `` ```"}},
		{"html tables of script", `<table><tr><td><script>x()</script>ok</td></tr></table>`, []string{"x()"}, []string{"ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := "\n" + Markdown(tt.html)
			for _, s := range tt.absent {
				assert.NotContains(t, got, s, "Markdown(%q) = %q", tt.html, got)
			}
			for _, s := range tt.present {
				assert.Contains(t, got, s, "Markdown(%q) = %q", tt.html, got)
			}
			assertInert(t, tt.html, got)
		})
	}
}

// assertInert checks the converter's promise on any output: outside code
// blocks and code spans, every special character is backslash-escaped, no
// line starts a block other than ours, and no line is a hidden marker.
func assertInert(t testing.TB, in, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("Markdown(%q) is not valid UTF-8", in)
	}
	wantLinks, wantCodes := 0, 0
	inFence := ""
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimLeft(line, " >-0123456789.|")
		if inFence != "" {
			if strings.TrimSpace(line) == inFence {
				inFence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") && strings.Trim(trimmed, "`") == "" { // a fence; "``` x ```" is a code span
			inFence = strings.TrimSpace(trimmed)
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "<!--") {
			t.Fatalf("Markdown(%q) has a line that is a hidden marker: %q", in, line)
		}
		// Our own syntax: link destinations <...>.
		rest := regexp.MustCompile(`\]\(<[^<> ]*>\)`).ReplaceAllString(line, "](<>)")
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			if c == '\\' {
				i++
				continue
			}
			if c == '`' { // a code span: skip to the closing run of the same length
				n := 0
				for i+n < len(rest) && rest[i+n] == '`' {
					n++
				}
				run := strings.Repeat("`", n)
				end := strings.Index(rest[i+n:], run)
				if end < 0 {
					t.Fatalf("Markdown(%q): unclosed code span in line %q", in, line)
				}
				i += n + end + n - 1
				wantCodes++
				continue
			}
			if strings.HasPrefix(rest[i:], "](<") {
				wantLinks++
			}
			if strings.HasPrefix(rest[i:], "](<>)") {
				i += len("](<>)") - 1
				continue
			}
			if strings.IndexByte("<@#!~%$&:/", c) >= 0 {
				t.Fatalf("Markdown(%q): unescaped %q in line %q", in, c, line)
			}
		}
	}
	assertRendersInert(t, in, out, wantLinks, wantCodes)
}

// assertRendersInert parses out with a real CommonMark parser with GitHub's
// extensions (goldmark with GFM: tables, autolinks, strikethrough, task
// lists) and checks that a reader sees only the structure the converter
// wrote: no raw HTML, no images, exactly the links and code spans that the
// line scan of assertInert found (a "|" that ends a table cell inside a
// code span or a link destination changes both), and links and autolinks
// only to http, https or mailto.
func assertRendersInert(t testing.TB, in, out string, wantLinks, wantCodes int) {
	t.Helper()
	src := []byte(out)
	doc := goldmark.New(goldmark.WithExtensions(extension.GFM)).Parser().Parse(text.NewReader(src))
	links, codes := 0, 0
	err := ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.RawHTML, *ast.HTMLBlock:
			return ast.WalkStop, fmt.Errorf("raw HTML")
		case *ast.Image:
			return ast.WalkStop, fmt.Errorf("an image of %q", n.Destination)
		case *ast.Link:
			if safeURL(string(n.Destination)) == "" {
				return ast.WalkStop, fmt.Errorf("a link to %q", n.Destination)
			}
			links++
		case *ast.AutoLink:
			if u := string(n.URL(src)); safeURL(u) == "" && !strings.HasPrefix(u, "www.") && n.AutoLinkType != ast.AutoLinkEmail {
				return ast.WalkStop, fmt.Errorf("an autolink to %q", u)
			}
		case *ast.CodeSpan:
			codes++
		}
		return ast.WalkContinue, nil
	})
	if err != nil {
		t.Fatalf("Markdown(%q) = %q renders %v", in, out, err)
	}
	if links != wantLinks || codes != wantCodes {
		t.Fatalf("Markdown(%q) = %q renders %d links and %d code spans, want %d and %d",
			in, out, links, codes, wantLinks, wantCodes)
	}
}

// TestHardening05TableCellPipes: a "|" inside a table cell's code span,
// link destination or image source must not end the cell, which would let
// ticket HTML put an image beacon, a mention or a link of its choosing into
// the GitLab note.
func TestHardening05TableCellPipes(t *testing.T) {
	tests := []struct{ name, html string }{
		{"code span", `<table><tr><th>h</th><th>h</th><th>h</th></tr><tr><td><code>|![x](https://evil.example/p.gif)| @all |</code></td></tr></table>`},
		{"link destination", `<table><tr><th>h</th><th>h</th><th>h</th></tr><tr><td><a href="https://ok.example/|@all|">t</a></td></tr></table>`},
		{"image source", `<table><tr><th>h</th><th>h</th><th>h</th></tr><tr><td><img src="https://ok.example/|https://phish.example/login|" alt="a"></td></tr></table>`},
		{"pre in a cell", "<table><tr><th>h</th><th>h</th></tr><tr><td><pre>a|[x](https://phish.example/)|</pre></td></tr></table>"},
		{"nested table", `<table><tr><th>h</th><th>h</th></tr><tr><td><table><tr><td><code>|@all|</code></td></tr></table></td></tr></table>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Markdown(tt.html)
			assertInert(t, tt.html, got)
			var rendered bytes.Buffer
			require.NoError(t, goldmark.New(goldmark.WithExtensions(extension.GFM)).Convert([]byte(got), &rendered))
			for _, bad := range []string{"<img", "phish.example/login\"", `href="https://phish`, "@all</td>", "evil.example/p.gif\""} {
				assert.NotContains(t, rendered.String(), bad, "Markdown(%q) = %q renders %q", tt.html, got, rendered.String())
			}
		})
	}
}

func FuzzMarkdown(f *testing.F) {
	for _, s := range []string{
		`<div>Since the upgrade to 5.2 the nightly export stops with <b>HTTP 500</b>.<br>Log file attached.</div>`,
		`<p>hi<script>alert(1)</script> @all #1 /close</p>`,
		`<ul><li>a<ul><li>b</li></ul></li></ul><pre>x</pre><blockquote>q</blockquote>`,
		`<a href="https://e.example/(x)">l</a><img src="https://e.example/i.png" alt="[a](b)">`,
		"<pre>```</pre><code>``</code>", `<table><tr><td>|</td></tr></table>`, "&lt;!-- x --&gt;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := Markdown(in)
		assertInert(t, in, out)
		if Markdown(in) != out {
			t.Fatalf("Markdown(%q) is not deterministic", in)
		}
	})
}
