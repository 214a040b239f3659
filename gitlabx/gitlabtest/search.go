package gitlabtest

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SearchMode chooses how the issue list's search parameter matches (see
// WithSearchMode).
type SearchMode int

// The search modes.
const (
	// SearchFullText matches like GitLab's PostgreSQL full-text search
	// (PgFullTextSearchable): the default.
	SearchFullText SearchMode = iota
	// SearchSubstring is a case-insensitive substring match, as the fake
	// did before it followed GitLab. No GitLab behaves like this; use it
	// only for tests of code that has not yet stopped relying on it.
	SearchSubstring
)

// WithSearchMode sets how issue search matches; the default is
// SearchFullText, as GitLab.
func WithSearchMode(m SearchMode) Option { return func(c *config) { c.searchMode = m } }

// DefaultSearchRateLimit is GitLab's default search_rate_limit for
// authenticated users: requests with a search parameter per minute.
const DefaultSearchRateLimit = 30

// WithSearchRateLimit sets how many issue and merge request list requests
// with a non-empty search parameter a user may make per minute (GitLab's
// search_rate_limit); the one over the limit answers 429. 0 disables the
// limit. The default is DefaultSearchRateLimit.
func WithSearchRateLimit(perMinute int) Option {
	return func(c *config) { c.searchLimit = perMinute; c.searchLimitSet = true }
}

// WithWallClock sets the clock that measures time windows: the search rate
// limit's minute and the back-off of auto-disabled webhooks. The default is
// time.Now; tests move a fake clock forward instead of sleeping.
func WithWallClock(now func() time.Time) Option { return func(c *config) { c.wall = now } }

// GitLab's PgFullTextSearchable (app/models/concerns/pg_full_text_searchable.rb).
var (
	tsqueryDisallow = regexp.MustCompile(`[^a-zA-Z0-9 .@/\-"]`)
	urlScheme       = regexp.MustCompile(`(?:^|\W)\w+://`)
	lexemeRun       = regexp.MustCompile(`[a-z0-9]+`)
)

// tsvectorMaxLength is PgFullTextSearchable::TSVECTOR_MAX_LENGTH: text
// beyond it is not indexed.
const tsvectorMaxLength = 1 << 20

// ftsIndex returns the lexemes of text as GitLab's search vector holds
// them: tags and HTML comments are parser "tag" tokens and are not
// indexed, words of 50 or more [A-Za-z0-9+/@] characters are dropped,
// text past 1 MiB is cut, and the rest is split into lower-case
// alphanumeric words. The fake does no stemming and keeps stop words.
func ftsIndex(text string) []string {
	text = dropLongWords(text)
	if len(text) > tsvectorMaxLength {
		text = text[:tsvectorMaxLength]
	}
	var out []string
	start := -1
	var word []byte
	flush := func() {
		if start >= 0 {
			out = append(out, string(word))
			start, word = -1, word[:0]
		}
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '<' {
			if end := tagEnd(text, i); end > i {
				flush()
				i = end - 1
				continue
			}
		}
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		default:
			flush()
			continue
		}
		if start < 0 {
			start = i
		}
		word = append(word, c)
	}
	flush()
	return out
}

// dropLongWords replaces each run of 50 or more [A-Za-z0-9+/@] characters
// with a space (PgFullTextSearchable::LONG_WORDS_REGEX).
func dropLongWords(text string) string {
	in := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '@'
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(text); {
		if !in(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && in(text[j]) {
			j++
		}
		if j-i >= 50 {
			if b.Len() == 0 {
				b.Grow(len(text))
			}
			b.WriteString(text[last:i])
			b.WriteByte(' ')
			last = j
		}
		i = j
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

// tagEnd returns the index just past the tag or HTML comment that starts
// at text[i] == '<', or -1 when none does: "<!-- ... -->", "<name ...>"
// and "</name>", as PostgreSQL's parser reads them.
func tagEnd(text string, i int) int {
	rest := text[i:]
	if strings.HasPrefix(rest, "<!--") {
		if j := strings.Index(rest[4:], "-->"); j >= 0 {
			return i + 4 + j + 3
		}
		return -1
	}
	k := 1
	if k < len(rest) && rest[k] == '/' {
		k++
	}
	if k >= len(rest) || !(rest[k] >= 'a' && rest[k] <= 'z' || rest[k] >= 'A' && rest[k] <= 'Z') {
		return -1
	}
	for j := k; j < len(rest); j++ {
		switch rest[j] {
		case '>':
			return i + j + 1
		case '<':
			return -1
		}
	}
	return -1
}

// ftsQuery is a parsed search: every term must match (AND).
type ftsQuery []ftsTerm

// ftsTerm is one word, matched as a prefix ("word:*"), or a quoted phrase
// whose words must follow each other exactly ("a <-> b").
type ftsTerm struct {
	words  []string
	phrase bool
}

// parseFTSQuery builds the query the way PgFullTextSearchable#build_tsquery
// does: URL schemes removed, characters outside [a-zA-Z0-9 .@/-"] turned
// into spaces, split into words and "quoted phrases".
func parseFTSQuery(q string) ftsQuery {
	q = urlScheme.ReplaceAllString(q, " ")
	q = tsqueryDisallow.ReplaceAllString(q, " ")
	var out ftsQuery
	for i, part := range strings.Split(q, `"`) {
		if i%2 == 1 { // inside quotes: a phrase
			if words := lexemeRun.FindAllString(strings.ToLower(part), -1); len(words) > 0 {
				out = append(out, ftsTerm{words: words, phrase: true})
			}
			continue
		}
		for _, f := range strings.Fields(part) {
			// "foo-bar" or "a.b/c" parse into their alphanumeric parts,
			// each of which must match.
			for _, w := range lexemeRun.FindAllString(strings.ToLower(f), -1) {
				out = append(out, ftsTerm{words: []string{w}})
			}
		}
	}
	return out
}

// match reports whether the indexed fields (each a list of lexemes)
// satisfy every term; a phrase must lie within one field.
func (q ftsQuery) match(fields [][]string) bool {
	for _, term := range q {
		found := false
		for _, lexemes := range fields {
			if term.phrase {
				found = hasPhrase(lexemes, term.words)
			} else {
				// Numbers match as prefixes too (GitLab's "(123:* | -123:*)").
				found = slices.ContainsFunc(lexemes, func(l string) bool { return strings.HasPrefix(l, term.words[0]) })
			}
			if found {
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func hasPhrase(lexemes, words []string) bool {
	for i := 0; i+len(words) <= len(lexemes); i++ {
		ok := true
		for j, w := range words {
			if lexemes[i+j] != w {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// issueMatcher returns a predicate that applies search to the fields
// named by in (title, description) in the configured mode; caller holds
// s.mu while using it.
func (s *Server) issueMatcher(search string, in []string) func(is *Issue) bool {
	if s.cfg.searchMode == SearchSubstring {
		q := strings.ToLower(search)
		return func(is *Issue) bool {
			for _, f := range in {
				switch f {
				case "title":
					if strings.Contains(strings.ToLower(is.Title), q) {
						return true
					}
				case "description":
					if strings.Contains(strings.ToLower(is.Description), q) {
						return true
					}
				}
			}
			return false
		}
	}
	q := parseFTSQuery(search)
	return func(is *Issue) bool {
		if len(q) == 0 {
			return true // nothing searchable left: GitLab's empty tsquery matches all
		}
		var fields [][]string
		for _, f := range in {
			switch f {
			case "title":
				fields = append(fields, s.indexed(is.Title))
			case "description":
				fields = append(fields, s.indexed(is.Description))
			}
		}
		return q.match(fields)
	}
}

// indexed returns ftsIndex(text), cached by text (GitLab keeps the search
// vector in issue_search_data); caller holds s.mu. The cache is dropped
// when it grows past 4096 texts.
func (s *Server) indexed(text string) []string {
	if lex, ok := s.ftsCache[text]; ok {
		return lex
	}
	if s.ftsCache == nil || len(s.ftsCache) > 4096 {
		s.ftsCache = map[string][]string{}
	}
	lex := ftsIndex(text)
	s.ftsCache[text] = lex
	return lex
}

// searchLimitMessage is GitLab's answer to a request over a rate limit
// (lib/api/helpers/rate_limiter.rb).
const searchLimitMessage = "This endpoint has been requested too many times. Try again later."

// throttleSearch counts a request with a search parameter against the
// user's per-minute limit, as Gitlab::ApplicationRateLimiter does with
// fixed one-minute windows. Over the limit it answers 429 with GitLab's
// body and the RateLimit-* and Retry-After headers, and returns true.
// Caller holds s.mu.
func (s *Server) throttleSearch(w http.ResponseWriter, a *apiRequest) bool {
	limit := s.cfg.searchLimit
	if limit <= 0 || strings.TrimSpace(a.get("search")) == "" {
		return false
	}
	now := s.cfg.wall()
	window := now.Unix() / 60
	key := searchKey{user: a.user.ID, window: window}
	if s.searchCount == nil || s.searchWindow != window {
		s.searchCount, s.searchWindow = map[searchKey]int{}, window
	}
	s.searchCount[key]++
	n := s.searchCount[key]
	if n <= limit {
		return false
	}
	reset := time.Unix((window+1)*60, 0)
	h := w.Header()
	h.Set("RateLimit-Name", "search_rate_limit")
	h.Set("RateLimit-Limit", strconv.Itoa(limit))
	h.Set("RateLimit-Observed", strconv.Itoa(n))
	h.Set("RateLimit-Remaining", "0")
	h.Set("RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("RateLimit-ResetTime", reset.UTC().Format(http.TimeFormat))
	h.Set("Retry-After", strconv.FormatInt(max(1, int64(reset.Sub(now).Seconds()+0.999)), 10))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"message": map[string]any{"error": searchLimitMessage}})
	return true
}

type searchKey struct {
	user   int64
	window int64
}

// SearchRequests returns how many requests with a search parameter user
// made in the current rate-limit minute.
func (s *Server) SearchRequests(user int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.searchCount[searchKey{user: user, window: s.cfg.wall().Unix() / 60}]
}
