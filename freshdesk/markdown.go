package freshdesk

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Markdown converts a Freshdesk HTML body to GitLab-flavoured Markdown that
// reads like the original and is inert:
//
//   - script, style, iframe, object, embed, svg, form controls and comments
//     are dropped with their content;
//   - every piece of text has Markdown's and GitLab's special characters
//     backslash-escaped, so "<script>", "**", "[x](javascript:...)",
//     "@all", "#12", "~label", "/close" and "<!-- ... -->" arrive as text
//     (GitLab honours backslash escapes for its references);
//   - links keep only http, https and mailto targets; images become links
//     ("image: alt") instead of being loaded inline;
//   - <pre> becomes a fenced code block whose fence is longer than any
//     backtick run inside it;
//   - in table cells every "|" is escaped, inside code spans and link
//     destinations too, so no cell ends early.
//
// Paragraphs, line breaks, headings, bold, italics, inline code, lists,
// block quotes, rules and simple tables keep their shape.
func Markdown(src string) string {
	nodes, err := html.ParseFragment(strings.NewReader(src), &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body})
	if err != nil {
		// The parser only fails on read errors, which a strings.Reader has none of.
		return escapeText(src)
	}
	m := &mdWriter{}
	for _, n := range nodes {
		m.node(n)
	}
	m.flush()
	return strings.TrimRight(m.out.String(), "\n")
}

// mdWriter accumulates inline text into a paragraph and writes blocks with
// the current prefixes (block quotes and list items).
type mdWriter struct {
	out    strings.Builder
	para   buf // inline Markdown of the current paragraph; '\n' marks a hard break
	stack  []prefix
	tight  bool // the next block follows a list item without a blank line
	wrote  bool // something was written, so the next block needs a separator
	inLink int
	// flushes counts paragraph flushes, so inline wrappers notice that a
	// block inside them ended the paragraph they started in.
	flushes int
}

// buf is an append-only byte buffer that can be cut back.
type buf []byte

func (b *buf) WriteString(s string) { *b = append(*b, s...) }
func (b *buf) addByte(c byte)       { *b = append(*b, c) }
func (b *buf) String() string       { return string(*b) }
func (b *buf) Reset()               { *b = (*b)[:0] }

type prefix struct {
	first, rest string
	used        bool
}

// dropped elements lose their content too.
var dropped = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Noscript: true, atom.Template: true,
	atom.Iframe: true, atom.Object: true, atom.Embed: true, atom.Svg: true, atom.Math: true,
	atom.Head: true, atom.Title: true, atom.Meta: true, atom.Link: true, atom.Base: true,
	atom.Input: true, atom.Select: true, atom.Button: true, atom.Frameset: true, atom.Frame: true,
	atom.Audio: true, atom.Video: true, atom.Canvas: true,
}

// blockish elements end the paragraph before and after them.
var blockish = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Section: true, atom.Article: true, atom.Header: true,
	atom.Footer: true, atom.Aside: true, atom.Nav: true, atom.Main: true, atom.Address: true,
	atom.Figure: true, atom.Figcaption: true, atom.Dl: true, atom.Dt: true, atom.Dd: true,
	atom.Center: true, atom.Form: true, atom.Fieldset: true, atom.Details: true, atom.Summary: true,
	atom.Html: true, atom.Body: true, atom.Caption: true,
}

func (m *mdWriter) node(n *html.Node) {
	switch n.Type {
	case html.TextNode:
		m.para.WriteString(escapeText(collapse(n.Data)))
		return
	case html.ElementNode:
	case html.DocumentNode:
		m.children(n)
		return
	default: // comments, doctypes
		return
	}
	if dropped[n.DataAtom] {
		return
	}
	switch n.DataAtom {
	case atom.Br:
		m.para.addByte('\n')
	case atom.Hr:
		m.flush()
		m.block([]string{"---"})
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		m.flush()
		m.children(n)
		text := strings.TrimSpace(strings.ReplaceAll(normalize(m.para.String()), "\n", " "))
		m.para.Reset()
		if text != "" {
			level := int(n.Data[1] - '0')
			m.block([]string{strings.Repeat("#", level) + " " + text})
		}
	case atom.Pre:
		m.flush()
		m.codeBlock(textContent(n))
	case atom.Blockquote:
		m.flush()
		m.stack = append(m.stack, prefix{first: "> ", rest: "> "})
		m.children(n)
		m.flush()
		m.stack = m.stack[:len(m.stack)-1]
	case atom.Ul, atom.Ol:
		m.flush()
		i := 0
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type != html.ElementNode || c.DataAtom != atom.Li {
				m.node(c)
				continue
			}
			i++
			marker := "- "
			if n.DataAtom == atom.Ol {
				marker = itoa(i) + ". "
			}
			m.flush()
			if i > 1 || (n.Parent != nil && n.Parent.DataAtom == atom.Li) {
				m.tight = true
			}
			m.stack = append(m.stack, prefix{first: marker, rest: strings.Repeat(" ", len(marker))})
			m.children(c)
			m.flush()
			if !m.stack[len(m.stack)-1].used { // empty item: still show it
				m.block([]string{""})
			}
			m.stack = m.stack[:len(m.stack)-1]
		}
		m.flush()
	case atom.Li: // outside a list
		m.flush()
		m.stack = append(m.stack, prefix{first: "- ", rest: "  "})
		m.children(n)
		m.flush()
		m.stack = m.stack[:len(m.stack)-1]
	case atom.Table:
		m.flush()
		m.table(n)
	case atom.B, atom.Strong:
		m.wrapInline(n, "**")
	case atom.I, atom.Em:
		m.wrapInline(n, "_")
	case atom.Code, atom.Kbd, atom.Samp, atom.Tt:
		m.para.WriteString(codeSpan(collapse(textContent(n))))
	case atom.A:
		m.link(n)
	case atom.Img:
		m.image(n)
	default:
		if blockish[n.DataAtom] {
			m.flush()
			m.children(n)
			m.flush()
			return
		}
		m.children(n)
	}
}

func (m *mdWriter) children(n *html.Node) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		m.node(c)
	}
}

// wrapInline renders n's children between delimiters, moving surrounding
// spaces outside so that the emphasis stays valid Markdown.
func (m *mdWriter) wrapInline(n *html.Node, delim string) {
	start, gen := len(m.para), m.flushes
	m.children(n)
	if m.flushes != gen { // a block inside flushed the paragraph: no emphasis across blocks
		return
	}
	inner := string(m.para[start:])
	m.para = m.para[:start]
	trimmed := strings.TrimSpace(inner)
	if trimmed == "" || strings.Contains(trimmed, "\n") {
		m.para.WriteString(inner)
		return
	}
	if strings.HasPrefix(inner, " ") {
		m.para.addByte(' ')
	}
	m.para.WriteString(delim + trimmed + delim)
	if strings.HasSuffix(inner, " ") {
		m.para.addByte(' ')
	}
}

func (m *mdWriter) link(n *html.Node) {
	href := safeURL(attr(n, "href"))
	if href == "" || m.inLink > 0 {
		m.children(n)
		return
	}
	start, gen := len(m.para), m.flushes
	m.inLink++
	m.children(n)
	m.inLink--
	if m.flushes != gen { // a block inside the link flushed the paragraph: keep its text only
		return
	}
	text := strings.TrimSpace(strings.ReplaceAll(string(m.para[start:]), "\n", " "))
	m.para = m.para[:start]
	if text == "" {
		text = escapeText(href)
	}
	m.para.WriteString("[" + text + "](<" + href + ">)")
}

func (m *mdWriter) image(n *html.Node) {
	alt := strings.TrimSpace(collapse(attr(n, "alt")))
	label := "image"
	if alt != "" {
		label += ": " + alt
	}
	src := safeURL(attr(n, "src"))
	if src == "" || m.inLink > 0 {
		m.para.WriteString(escapeText("[" + label + "]"))
		return
	}
	m.para.WriteString("[" + escapeText(label) + "](<" + src + ">)")
}

func (m *mdWriter) table(n *html.Node) {
	var rows [][]string
	var walk func(*html.Node)
	walk = func(x *html.Node) {
		for c := x.FirstChild; c != nil; c = c.NextSibling {
			if c.Type != html.ElementNode || dropped[c.DataAtom] {
				continue
			}
			if c.DataAtom == atom.Tr {
				var row []string
				for cell := c.FirstChild; cell != nil; cell = cell.NextSibling {
					if cell.Type == html.ElementNode && (cell.DataAtom == atom.Td || cell.DataAtom == atom.Th) {
						sub := &mdWriter{}
						sub.children(cell)
						sub.flush()
						row = append(row, escapeCellPipes(strings.Join(strings.Fields(sub.out.String()), " ")))
					}
				}
				rows = append(rows, row)
				continue
			}
			walk(c)
		}
	}
	walk(n)
	width := 0
	for _, r := range rows {
		width = max(width, len(r))
	}
	if width == 0 {
		return
	}
	var lines []string
	for i, r := range rows {
		for len(r) < width {
			r = append(r, "")
		}
		lines = append(lines, "| "+strings.Join(r, " | ")+" |")
		if i == 0 {
			lines = append(lines, "|"+strings.Repeat(" --- |", width))
		}
	}
	m.block(lines)
}

// escapeCellPipes makes the Markdown of one table cell safe to put between
// "|" delimiters: GFM splits a row at every "|" not preceded by a backslash
// before it parses the inline content, so a "|" inside a code span or a
// link destination would end the cell and let the rest of it be read as
// new Markdown. Every such "|" gets a backslash; GFM renderers take the
// backslash out again (inside code spans too), so the cell reads as before.
// Escaped characters outside code spans ("\|" from escapeText) stay as
// they are.
func escapeCellPipes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			i++
		case c == '`':
			n := 0
			for i+n < len(s) && s[i+n] == '`' {
				n++
			}
			run := s[i : i+n]
			end := strings.Index(s[i+n:], run)
			if end < 0 { // not a code span: literal backticks
				b.WriteString(run)
				i += n - 1
				continue
			}
			b.WriteString(run)
			b.WriteString(strings.ReplaceAll(s[i+n:i+n+end], "|", `\|`))
			b.WriteString(run)
			i += n + end + n - 1
		case c == '|':
			b.WriteString(`\|`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (m *mdWriter) codeBlock(code string) {
	code = strings.TrimPrefix(stripControls(code), "\n")
	code = strings.TrimRight(code, "\n")
	fence := strings.Repeat("`", max(3, longestRun(code, '`')+1))
	lines := []string{fence}
	lines = append(lines, strings.Split(code, "\n")...)
	lines = append(lines, fence)
	m.block(lines)
}

// flush writes the pending paragraph, if any, as one block.
func (m *mdWriter) flush() {
	p := normalize(m.para.String())
	m.flushes++
	m.para.Reset()
	var lines []string
	for l := range strings.SplitSeq(p, "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return
	}
	// Hard breaks: a backslash at the end of every line but the last;
	// an empty line in the middle (two <br>) keeps the break visible.
	for i := range len(lines) - 1 {
		if lines[i] == "" {
			lines[i] = "\\"
		} else {
			lines[i] += "\\"
		}
	}
	m.block(lines)
}

// block writes lines under the current prefixes, separated from the
// previous block by a blank line unless the block starts a following list item.
func (m *mdWriter) block(lines []string) {
	if m.wrote && !m.tight {
		m.out.WriteString(strings.TrimRight(m.separatorPrefix(), " "))
		m.out.WriteByte('\n')
	}
	m.tight = false
	for _, l := range lines {
		m.out.WriteString(strings.TrimRight(m.linePrefix()+l, " "))
		m.out.WriteByte('\n')
	}
	m.wrote = true
}

// separatorPrefix is the prefix of a blank line between blocks: the
// prefixes of the blocks already open.
func (m *mdWriter) separatorPrefix() string {
	var b strings.Builder
	for _, p := range m.stack {
		if !p.used {
			break
		}
		b.WriteString(p.rest)
	}
	return b.String()
}

// linePrefix builds the prefix of the next line.
func (m *mdWriter) linePrefix() string {
	var b strings.Builder
	for i := range m.stack {
		p := &m.stack[i]
		if p.used {
			b.WriteString(p.rest)
			continue
		}
		b.WriteString(p.first)
		p.used = true
	}
	return b.String()
}

// normalize collapses runs of spaces (text was already collapsed per node,
// but adjacent nodes can meet with spaces on both sides).
func normalize(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == ' ' {
			if !space {
				b.WriteRune(r)
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// collapse turns HTML whitespace runs into one space and drops control and
// bidi-override characters.
func collapse(s string) string {
	var b strings.Builder
	space := false
	for _, r := range stripControls(s) {
		if r == '\n' || r == '\t' || r == '\r' || r == '\f' || r == ' ' || r == '\u00a0' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// stripControls removes C0/C1 controls other than tab and newline, bidi
// overrides and invalid UTF-8.
func stripControls(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return -1
		case r == '\n' || r == '\t':
			return r
		case unicode.IsControl(r):
			return -1
		case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069', r == '\u200e', r == '\u200f':
			return -1
		}
		return r
	}, s)
}

// escaped lists the ASCII punctuation escaped in text: Markdown syntax,
// raw HTML, and GitLab references (@user, #issue, !mr, ~label, %milestone,
// $snippet, &epic, :emoji:, /quick-action).
const escaped = "\\`*_{}[]()#+-!|<>~@$%&:^=/"

// escapeText backslash-escapes text for Markdown. A "." after a digit is
// escaped too, so "1." cannot start an ordered list.
func escapeText(s string) string {
	var b strings.Builder
	var prev rune
	for _, r := range stripControls(s) {
		if (r < 128 && strings.ContainsRune(escaped, r)) || (r == '.' && prev >= '0' && prev <= '9') {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

// codeSpan wraps s in a backtick run longer than any inside it.
func codeSpan(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	return fence + " " + s + " " + fence
}

func longestRun(s string, c byte) int {
	best, cur := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			cur++
			best = max(best, cur)
		} else {
			cur = 0
		}
	}
	return best
}

// safeURL returns u made safe for a Markdown link destination in <...>, or
// "" when its scheme is not http, https or mailto.
func safeURL(u string) string {
	u = strings.TrimSpace(stripControls(u))
	scheme, _, ok := strings.Cut(u, ":")
	if !ok {
		return ""
	}
	switch strings.ToLower(scheme) {
	case "http", "https", "mailto":
	default:
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case c <= ' ' || c == '<' || c == '>' || c == '\\' || c == '`' || c == '"' || c == '\'' || c == '(' || c == ')' || c >= 0x7f:
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Namespace == "" && strings.EqualFold(a.Key, key) {
			return a.Val
		}
	}
	return ""
}

// textContent is the concatenated text below n, without dropped elements.
func textContent(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(x *html.Node) {
		switch {
		case x.Type == html.TextNode:
			b.WriteString(x.Data)
		case x.Type == html.ElementNode && dropped[x.DataAtom]:
		case x.Type == html.ElementNode && x.DataAtom == atom.Br:
			b.WriteByte('\n')
		default:
			for c := x.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
	}
	walk(n)
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// htmlText is the plain text of an HTML fragment.
func htmlText(s string) string {
	nodes, err := html.ParseFragment(strings.NewReader(s), &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body})
	if err != nil {
		return s
	}
	var b strings.Builder
	for _, n := range nodes {
		b.WriteString(textContent(n))
	}
	return b.String()
}
