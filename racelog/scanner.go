package racelog

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Default markers and caps. The zero value of each Config field selects these.
const (
	DefaultStartMarker    = "WARNING: DATA RACE"
	DefaultEndMarker      = "=================="
	DefaultMaxLineBytes   = 64 << 10
	DefaultMaxReportLines = 4096
	DefaultMaxReportBytes = 1 << 20
)

// readSize is how much the scanner asks its reader for at a time. Large reads
// let bytes.Index run over long stretches of log between reports.
const readSize = 1 << 20

// Config configures a Scanner. The zero value of each field selects the
// documented default.
type Config struct {
	// StartMarker starts a report when it ends a line (after the per-line
	// prefix, which is learned from that line). Default DefaultStartMarker.
	StartMarker string
	// EndMarker ends a report; the same line just before the start marker
	// opens it. Default DefaultEndMarker.
	EndMarker string
	// MaxLineBytes caps a line; the rest of a longer line is skipped.
	// Default DefaultMaxLineBytes.
	MaxLineBytes int
	// MaxReportLines caps the lines kept for one report, and separately the
	// foreign log lines tolerated inside one. A report over the cap is
	// returned with Truncated set. Default DefaultMaxReportLines.
	MaxReportLines int
	// MaxReportBytes caps the text kept for one report. A report over the
	// cap is returned with Truncated set. Default DefaultMaxReportBytes.
	MaxReportBytes int
}

func (c Config) withDefaults() Config {
	if c.StartMarker == "" {
		c.StartMarker = DefaultStartMarker
	}
	if c.EndMarker == "" {
		c.EndMarker = DefaultEndMarker
	}
	if c.MaxLineBytes <= 0 {
		c.MaxLineBytes = DefaultMaxLineBytes
	}
	if c.MaxLineBytes < len(c.StartMarker)+1 {
		c.MaxLineBytes = len(c.StartMarker) + 1
	}
	if c.MaxReportLines <= 0 {
		c.MaxReportLines = DefaultMaxReportLines
	}
	if c.MaxReportBytes <= 0 {
		c.MaxReportBytes = DefaultMaxReportBytes
	}
	return c
}

// Scanner finds race-detector reports in a log, streaming: memory stays
// bounded by the read buffer, MaxLineBytes and the report caps whatever the
// size of the log. Input compressed with gzip is recognised by its magic
// bytes and decompressed.
//
// Use it like bufio.Scanner:
//
//	s := racelog.NewScanner(f, racelog.Config{})
//	for s.Scan(ctx) {
//		r := s.Report()
//		...
//	}
//	if err := s.Err(); err != nil { ... }
type Scanner struct {
	src    io.Reader
	cfg    Config
	marker []byte
	endm   []byte

	buf        []byte
	start, end int
	eof        bool
	bol        bool // buf[start] begins a line
	sniffed    bool
	full       bool  // the last read filled the buffer
	skipping   bool  // the rest of an overlong line is being skipped
	off        int64 // stream offset of buf[start]
	lines      int64 // newlines before buf[start]
	err        error
	done       bool

	rep Report
	cur *reportState
}

// NewScanner returns a Scanner reading r. It does no I/O until Scan.
func NewScanner(r io.Reader, cfg Config) *Scanner {
	cfg = cfg.withDefaults()
	return &Scanner{
		src:    r,
		cfg:    cfg,
		marker: []byte(cfg.StartMarker),
		endm:   []byte(cfg.EndMarker),
		buf:    make([]byte, 64<<10),
		bol:    true,
	}
}

// Parse returns every report in r with the default Config. It stops at the
// first read error or when ctx is cancelled, returning the reports found so
// far with the error.
func Parse(ctx context.Context, r io.Reader) ([]Report, error) {
	s := NewScanner(r, Config{})
	var out []Report
	for s.Scan(ctx) {
		out = append(out, s.Report())
	}
	return out, s.Err()
}

// Report returns the report found by the last successful Scan. The caller
// may keep it; the next Scan does not change it.
func (s *Scanner) Report() Report { return s.rep }

// Err returns the first error met, or nil at the end of the input. When ctx
// was cancelled, errors.Is(err, context.Canceled) holds.
func (s *Scanner) Err() error { return s.err }

// Scan advances to the next report and reports whether there is one. It
// returns false at the end of the input, on a read error and when ctx is
// cancelled; Err tells which.
//
// A start marker followed by other text on its line is not a marker, and a
// start marker followed by neither an access nor the end marker (a log line
// that merely quotes it) is skipped, so that no issue is filed for it.
func (s *Scanner) Scan(ctx context.Context) bool {
	if s.done {
		return false
	}
	if !s.sniffed {
		s.sniffed = true
		s.sniff()
	}
	for {
		if err := ctx.Err(); err != nil {
			return s.stop(err)
		}
		if !s.search() {
			return s.stop(nil)
		}
		if s.readReport(ctx) {
			return true
		}
	}
}

func (s *Scanner) stop(err error) bool {
	s.done = true
	if s.err == nil {
		s.err = err
	}
	return false
}

// sniff reads the first bytes and switches to gzip when they are its magic.
func (s *Scanner) sniff() {
	for s.end < 2 && !s.eof {
		s.fill()
	}
	if s.end >= 2 && s.buf[0] == 0x1f && s.buf[1] == 0x8b {
		head := bytes.Clone(s.buf[:s.end])
		zr, err := gzip.NewReader(io.MultiReader(bytes.NewReader(head), s.src))
		if err != nil {
			s.err = fmt.Errorf("racelog: gzip: %w", err)
			s.done = true
			return
		}
		s.src = gzipErrReader{zr}
		s.start, s.end, s.eof = 0, 0, false
	}
}

type gzipErrReader struct{ r io.Reader }

func (g gzipErrReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("gzip: %w", err)
	}
	return n, err
}

// fill compacts the buffer and reads more. At the end of the input or on an
// error it sets eof (and err).
func (s *Scanner) fill() {
	if s.eof {
		return
	}
	if s.start > 0 {
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	// Grow towards readSize while the reader keeps filling the buffer, so
	// that large logs get long stretches to search, or when a long line
	// leaves little room.
	// The buffer never needs more than readSize plus the two lines kept
	// around a marker; it starts small so that short inputs stay cheap.
	if max := readSize + 3*s.cfg.MaxLineBytes + len(s.marker); (s.full || len(s.buf)-s.end < 4<<10) && len(s.buf) < max {
		nb := make([]byte, min(2*len(s.buf), max))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	for tries := 0; ; tries++ {
		n, err := s.src.Read(s.buf[s.end:])
		s.end += n
		s.full = s.end == len(s.buf)
		if err == io.EOF {
			s.eof = true
			return
		}
		if err != nil {
			s.eof = true
			if s.err == nil {
				s.err = fmt.Errorf("racelog: read: %w", err)
			}
			return
		}
		if n > 0 || tries > 100 {
			if n == 0 {
				s.eof = true
				s.err = fmt.Errorf("racelog: read: %w", io.ErrNoProgress)
			}
			return
		}
	}
}

// advanceTo consumes the buffer up to p, counting lines.
func (s *Scanner) advanceTo(p int) {
	if p <= s.start {
		return
	}
	s.lines += int64(bytes.Count(s.buf[s.start:p], []byte{'\n'}))
	s.off += int64(p - s.start)
	s.bol = s.buf[p-1] == '\n'
	s.start = p
}

// search looks for the next start marker with bytes.Index over the whole
// buffer. It reports whether it found one; then s.rep and s.cur are begun
// and the marker line is consumed. False means the end of the input.
func (s *Scanner) search() bool {
	for {
		data := s.buf[s.start:s.end]
		i := bytes.Index(data, s.marker)
		if i < 0 {
			if s.eof {
				s.advanceTo(s.end)
				return false
			}
			s.keepTail()
			s.fill()
			continue
		}
		m := s.start + i
		lineStart := s.start
		if ls := bytes.LastIndexByte(data[:i], '\n'); ls >= 0 {
			lineStart = s.start + ls + 1
		} else if !s.bol {
			s.advanceTo(m + 1) // on an overlong line
			continue
		}
		if m-lineStart > s.cfg.MaxLineBytes {
			s.advanceTo(m + 1)
			continue
		}
		nl := bytes.IndexByte(s.buf[m:s.end], '\n')
		lineEnd, next := s.end, s.end
		if nl >= 0 {
			lineEnd, next = m+nl, m+nl+1
		} else if !s.eof {
			if s.end-lineStart > s.cfg.MaxLineBytes {
				s.advanceTo(m + 1)
				continue
			}
			// The marker line is incomplete: keep it and the line before.
			s.advanceTo(s.prevLineStart(lineStart))
			s.fill()
			continue
		}
		line := trimCR(s.buf[lineStart:lineEnd])
		st, ok := s.markerLine(line, m-lineStart)
		if !ok {
			s.advanceTo(m + 1)
			continue
		}
		opener := false
		if p := s.prevLineStart(lineStart); p < lineStart {
			if c, ok := st.contentOf(trimCR(s.buf[p:lineStart-1]), s); ok && len(c) == 1 && bytes.Equal(bytes.TrimSpace(c[0]), s.endm) {
				opener = true
			}
			st.pending = st.pending[:0]
		}
		s.advanceTo(lineStart)
		s.rep = Report{Line: s.lines + 1, Offset: s.off, Prefix: st.rawPrefix, Test: st.test}
		s.cur = st
		if opener {
			s.cur.addText(s.endm)
		}
		s.cur.addText(bytes.TrimRight(st.markerContent, " \t"))
		s.advanceTo(next)
		return true
	}
}

// prevLineStart returns the start of the line before the one starting at
// lineStart, if it is in the buffer and not overlong; else lineStart.
func (s *Scanner) prevLineStart(lineStart int) int {
	if lineStart <= s.start || s.buf[lineStart-1] != '\n' {
		return lineStart
	}
	p := bytes.LastIndexByte(s.buf[s.start:lineStart-1], '\n')
	if p < 0 {
		if !s.bol {
			return lineStart
		}
		p = s.start
	} else {
		p += s.start + 1
	}
	if lineStart-p > s.cfg.MaxLineBytes {
		return lineStart
	}
	return p
}

// keepTail drops the searched part of the buffer, keeping the last partial
// line (a marker may straddle reads) and the complete line before it (the
// opening "=================="), both capped.
func (s *Scanner) keepTail() {
	data := s.buf[s.start:s.end]
	last := bytes.LastIndexByte(data, '\n')
	if last < 0 {
		if len(data) > s.cfg.MaxLineBytes+len(s.marker) {
			s.advanceTo(s.end - len(s.marker) + 1)
		}
		return
	}
	partial := s.start + last + 1
	if s.end-partial > s.cfg.MaxLineBytes+len(s.marker) {
		s.advanceTo(s.end - len(s.marker) + 1)
		return
	}
	s.advanceTo(s.prevLineStart(partial))
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// envelope is one JSON log line that carries a line of output: a go test
// -json event ("Output"), a Docker json-file entry ("log") or a journald
// export entry ("MESSAGE", from journalctl -o json).
type envelope struct {
	Package string  `json:"Package"`
	Test    string  `json:"Test"`
	Output  *string `json:"Output"`
	Log     *string `json:"log"`
	Stream  string  `json:"stream"`
	Message *string `json:"MESSAGE"`
	PID     string  `json:"_PID"`
	Ident   string  `json:"SYSLOG_IDENTIFIER"`
}

// text returns the output the envelope carries.
func (e *envelope) text() (string, bool) {
	switch {
	case e.Output != nil:
		return *e.Output, true
	case e.Log != nil:
		return *e.Log, true
	case e.Message != nil:
		return *e.Message + "\n", true
	}
	return "", false
}

// source says which stream the output belongs to: only output of the source
// that printed the start marker belongs to the report.
func (e *envelope) source() string {
	switch {
	case e.Output != nil:
		return "go test\x00" + e.Package + "\x00" + e.Test
	case e.Log != nil:
		return "docker\x00" + e.Stream
	}
	return "journald\x00" + e.Ident + "\x00" + e.PID
}

func decodeEnvelope(b []byte) (envelope, string, bool) {
	var ev envelope
	if json.Unmarshal(b, &ev) != nil {
		return ev, "", false
	}
	text, ok := ev.text()
	return ev, text, ok
}

// markerLine decides whether line (with the marker at byte m) starts a
// report, and learns how to strip the following lines.
func (s *Scanner) markerLine(line []byte, m int) (*reportState, bool) {
	rest := line[m+len(s.marker):]
	if len(bytes.TrimSpace(rest)) == 0 {
		p := line[:m]
		return &reportState{
			s:             s,
			rawPrefix:     string(p),
			shape:         learnPrefix(p),
			shapeTrim:     learnPrefix(bytes.TrimRight(p, " \t")),
			markerContent: line[m:],
		}, true
	}
	j := bytes.IndexByte(line[:m], '{')
	if j < 0 {
		return nil, false
	}
	ev, text, ok := decodeEnvelope(line[j:])
	if !ok {
		return nil, false
	}
	out := []byte(text)
	k := bytes.Index(out, s.marker)
	if k < 0 || len(bytes.TrimSpace(out[k+len(s.marker):])) != 0 {
		return nil, false
	}
	outer := line[:j]
	inner := out[:k]
	return &reportState{
		s:             s,
		rawPrefix:     string(inner),
		shape:         learnPrefix(inner),
		shapeTrim:     learnPrefix(bytes.TrimRight(inner, " \t")),
		env:           true,
		outer:         learnPrefix(outer),
		source:        ev.source(),
		test:          ev.Test,
		markerContent: bytes.TrimRight(out[k:], "\r\n"),
	}, true
}

// reportState is the report being read in line mode.
type reportState struct {
	s             *Scanner
	rawPrefix     string
	shape         prefixShape
	shapeTrim     prefixShape
	env           bool
	outer         prefixShape
	source, test  string
	pending       []byte // partial go test -json Output
	markerContent []byte

	text  []byte
	lines int
	noise int
	sect  int // 0 none, 1 access, 2 goroutine, 3 location
	over  bool
}

// addText appends one line to the report text, honouring the caps.
func (st *reportState) addText(line []byte) {
	if st.over {
		return
	}
	if st.lines+1 > st.s.cfg.MaxReportLines || len(st.text)+len(line)+1 > st.s.cfg.MaxReportBytes {
		st.over = true
		return
	}
	st.lines++
	st.text = append(st.text, line...)
	st.text = append(st.text, '\n')
}

// strip removes the learned prefix; ok is false for a foreign line.
func (st *reportState) strip(line []byte) ([]byte, bool) {
	if n := st.shape.match(line); n >= 0 {
		return line[n:], true
	}
	if st.shapeTrim.match(line) == len(line) {
		return nil, true // a blank line whose trailing space was trimmed
	}
	return nil, false
}

// contentOf returns the report lines a raw log line carries (none for a
// foreign line; for go test -json, an Output may end mid-line).
func (st *reportState) contentOf(raw []byte, s *Scanner) ([][]byte, bool) {
	if !st.env {
		c, ok := st.strip(raw)
		if !ok {
			return nil, false
		}
		return [][]byte{c}, true
	}
	n := st.outer.match(raw)
	if n < 0 || n >= len(raw) || raw[n] != '{' {
		return nil, false
	}
	ev, text, ok := decodeEnvelope(raw[n:])
	if !ok || ev.source() != st.source {
		return nil, false
	}
	buf := append(st.pending, text...)
	var out [][]byte
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		c, ok := st.strip(trimCR(buf[:i]))
		if ok {
			out = append(out, bytes.Clone(c))
		}
		buf = buf[i+1:]
	}
	if len(buf) > s.cfg.MaxLineBytes {
		buf = buf[:s.cfg.MaxLineBytes]
	}
	st.pending = append(st.pending[:0], buf...)
	return out, true
}

// peekLine returns the next line without its newline (CR trimmed) and the
// position after it, skipping the rest of overlong lines. ok is false at the
// end of the input.
func (s *Scanner) peekLine() (line []byte, next int, ok bool) {
	for {
		data := s.buf[s.start:s.end]
		i := bytes.IndexByte(data, '\n')
		if s.skipping {
			if i >= 0 {
				s.advanceTo(s.start + i + 1)
				s.skipping = false
				continue
			}
			s.advanceTo(s.end)
			if s.eof {
				return nil, 0, false
			}
			s.fill()
			continue
		}
		if i >= 0 {
			if i > s.cfg.MaxLineBytes {
				return trimCR(data[:s.cfg.MaxLineBytes]), s.start + i + 1, true
			}
			return trimCR(data[:i]), s.start + i + 1, true
		}
		if len(data) >= s.cfg.MaxLineBytes {
			s.skipping = true
			return data[:s.cfg.MaxLineBytes], s.end, true
		}
		if s.eof {
			if len(data) == 0 {
				return nil, 0, false
			}
			return trimCR(data), s.end, true
		}
		s.fill()
	}
}

// readReport reads the lines of the report begun by search and finishes
// it. It reports false for a false start (no access and no end marker).
func (s *Scanner) readReport(ctx context.Context) bool {
	st := s.cur
	s.cur = nil
	complete := false
loop:
	for !st.over {
		if ctx.Err() != nil {
			break
		}
		raw, next, ok := s.peekLine()
		if !ok {
			break
		}
		if bytes.Contains(raw, s.marker) {
			if _, isMarker := s.markerLine(raw, bytes.Index(raw, s.marker)); isMarker {
				break // the next report starts; this line is left for search
			}
		}
		lines, ok := st.contentOf(raw, s)
		s.advanceTo(next)
		if !ok {
			if st.noise++; st.noise > s.cfg.MaxReportLines {
				break
			}
			continue
		}
		for _, c := range lines {
			switch st.line(c) {
			case lineEnd:
				complete = true
				break loop
			case lineStop:
				break loop
			case lineNoise:
				if st.noise++; st.noise > s.cfg.MaxReportLines {
					break loop
				}
			}
		}
	}
	if ctx.Err() != nil {
		return false // Scan stops with the context's error
	}
	if complete {
		st.addText(s.endm)
	}
	r := &s.rep
	r.Truncated = !complete || st.over
	r.Text = string(st.text)
	if len(r.Accesses) == 0 && !complete {
		return false
	}
	r.finish()
	return true
}

type lineKind int

const (
	lineReport lineKind = iota
	lineNoise
	lineEnd
	lineStop
)

// line interprets one content line of a report.
func (st *reportState) line(c []byte) lineKind {
	r := &st.s.rep
	t := bytes.TrimRight(c, " \t")
	if bytes.Equal(bytes.TrimSpace(t), st.s.endm) {
		return lineEnd
	}
	if len(t) == 0 {
		st.addText(nil)
		return lineReport
	}
	if isSummary(t) {
		return lineStop
	}
	if t[0] != ' ' && t[0] != '\t' {
		if a, ok := parseAccess(string(t)); ok {
			r.Accesses = append(r.Accesses, a)
			st.sect = 1
		} else if g, ok := parseGoroutine(string(t)); ok {
			r.Goroutines = append(r.Goroutines, g)
			st.sect = 2
		} else if isLocation(t) {
			r.Location = string(t)
			st.sect = 3
		} else if st.sect != 0 && (fileLineShape(t) || funcShape(t) || string(t) == "[failed to restore the stack]") {
			// A log shipper trimmed the indentation; the shape still tells
			// a stack line from a foreign one.
			return st.stackLine(t, t, fileLineShape(t))
		} else {
			return lineNoise
		}
		st.addText(t)
		return lineReport
	}
	return st.stackLine(t, bytes.TrimSpace(t), bytes.HasPrefix(t, []byte("      ")) || t[0] == '\t' && len(t) > 1 && t[1] == '\t')
}

// stackLine handles a line of a stack: "[failed to restore the stack]", a
// file line (isFile) or a function line.
func (st *reportState) stackLine(t, trim []byte, isFile bool) lineKind {
	r := &st.s.rep
	switch {
	case string(trim) == "[failed to restore the stack]":
		if st.sect == 1 {
			r.Accesses[len(r.Accesses)-1].StackUnavailable = true
		}
	case isFile:
		if fr := st.frames(); fr != nil && len(*fr) > 0 {
			f := &(*fr)[len(*fr)-1]
			f.File, f.Line, f.PC = parseFileLine(string(trim))
		}
	case st.sect != 0:
		if fr := st.frames(); fr != nil {
			*fr = append(*fr, Frame{Func: string(trim)})
		}
	default:
		return lineNoise
	}
	st.addText(t)
	return lineReport
}

// fileLineShape reports whether t looks like "/path/file.go:12 +0x1c".
func fileLineShape(t []byte) bool {
	_, line, _ := parseFileLine(string(bytes.TrimSpace(t)))
	return line > 0
}

// funcShape reports whether t looks like "pkg.(*T).Method()".
func funcShape(t []byte) bool {
	return bytes.HasSuffix(t, []byte(")")) && !bytes.ContainsAny(t, " \t") && bytes.IndexByte(t, '.') > 0
}

// frames returns the frame list of the current section (nil for a location).
func (st *reportState) frames() *[]Frame {
	r := &st.s.rep
	switch st.sect {
	case 1:
		return &r.Accesses[len(r.Accesses)-1].Frames
	case 2:
		return &r.Goroutines[len(r.Goroutines)-1].Frames
	}
	return nil
}

func isSummary(t []byte) bool {
	if bytes.Contains(t, []byte("race detected during execution of test")) {
		return true
	}
	s := string(bytes.TrimSpace(t))
	if rest, ok := strings.CutPrefix(s, "Found "); ok {
		n, tail, _ := strings.Cut(rest, " ")
		_, err := strconv.Atoi(n)
		return err == nil && strings.HasPrefix(tail, "data race")
	}
	return strings.HasPrefix(s, "--- FAIL: ")
}

func isLocation(t []byte) bool {
	return bytes.HasPrefix(t, []byte("Heap block of size ")) ||
		bytes.HasPrefix(t, []byte("Global var ")) ||
		bytes.HasPrefix(t, []byte("Location is "))
}

// parseAccess parses "Read at 0x00c000012345 by goroutine 7:",
// "Previous write at 0x... by main goroutine:" and the old form without an
// address ("Read by goroutine 7:").
func parseAccess(s string) (Access, bool) {
	head, ok := strings.CutSuffix(s, ":")
	if !ok {
		return Access{}, false
	}
	kindAddr, who, ok := strings.Cut(head, " by ")
	if !ok {
		return Access{}, false
	}
	a := Access{Frames: []Frame{}}
	switch {
	case who == "main goroutine":
		a.Goroutine = "main"
	case strings.HasPrefix(who, "goroutine "):
		a.Goroutine = strings.TrimPrefix(who, "goroutine ")
		if _, err := strconv.Atoi(a.Goroutine); err != nil {
			return Access{}, false
		}
	default:
		return Access{}, false
	}
	kind, addr, hasAddr := strings.Cut(kindAddr, " at ")
	if hasAddr {
		if !strings.HasPrefix(addr, "0x") {
			return Access{}, false
		}
		a.Addr = addr
	}
	lk := strings.ToLower(kind)
	if !strings.HasSuffix(lk, "read") && !strings.HasSuffix(lk, "write") {
		return Access{}, false
	}
	for _, w := range strings.Fields(lk) {
		switch w {
		case "previous", "atomic", "read", "write":
		default:
			return Access{}, false
		}
	}
	a.Kind = kind
	return a, true
}

// parseGoroutine parses "Goroutine 7 (running) created at:".
func parseGoroutine(s string) (Goroutine, bool) {
	rest, ok := strings.CutPrefix(s, "Goroutine ")
	if !ok {
		return Goroutine{}, false
	}
	rest, ok = strings.CutSuffix(rest, " created at:")
	if !ok {
		return Goroutine{}, false
	}
	id, state, ok := strings.Cut(rest, " ")
	if !ok || len(state) < 2 || state[0] != '(' || state[len(state)-1] != ')' {
		return Goroutine{}, false
	}
	if _, err := strconv.Atoi(id); err != nil {
		return Goroutine{}, false
	}
	return Goroutine{ID: id, State: state[1 : len(state)-1], Frames: []Frame{}}, true
}

// parseFileLine parses "/path/file.go:12 +0x1c".
func parseFileLine(s string) (file string, line int, pc string) {
	if i := strings.LastIndex(s, " +0x"); i >= 0 {
		s, pc = s[:i], s[i+1:]
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if n, err := strconv.Atoi(s[i+1:]); err == nil {
			return s[:i], n, pc
		}
	}
	return s, 0, pc
}
