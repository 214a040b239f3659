package racelog

// prefixShape matches the per-line prefix learned from a start marker line.
// Digits vary from line to line (timestamps, counters), so every run of
// digits matches any run of digits, and a '.' or ',' followed by digits
// (fractional seconds, which RFC 3339 "nano" formats drop when zero) is
// optional. Every other byte must match literally.
type prefixShape struct {
	toks []tok
}

type tokKind uint8

const (
	tokLit    tokKind = iota // literal bytes
	tokDigits                // one or more digits
	tokFrac                  // optional [.,] followed by digits
)

type tok struct {
	kind tokKind
	lit  []byte
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func learnPrefix(p []byte) prefixShape {
	var s prefixShape
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case isDigit(c):
			for i < len(p) && isDigit(p[i]) {
				i++
			}
			s.toks = append(s.toks, tok{kind: tokDigits})
		case (c == '.' || c == ',') && i+1 < len(p) && isDigit(p[i+1]) && len(s.toks) > 0 && s.toks[len(s.toks)-1].kind == tokDigits:
			i++
			for i < len(p) && isDigit(p[i]) {
				i++
			}
			s.toks = append(s.toks, tok{kind: tokFrac})
		default:
			j := i
			for j < len(p) && !isDigit(p[j]) {
				if (p[j] == '.' || p[j] == ',') && j+1 < len(p) && isDigit(p[j+1]) && j > 0 && isDigit(p[j-1]) {
					break
				}
				j++
			}
			if j == i { // a lone '.' or ',' before digits after a non-digit
				j = i + 1
			}
			if n := len(s.toks); n > 0 && s.toks[n-1].kind == tokLit {
				s.toks[n-1].lit = append(s.toks[n-1].lit, p[i:j]...)
			} else {
				s.toks = append(s.toks, tok{kind: tokLit, lit: append([]byte(nil), p[i:j]...)})
			}
			i = j
		}
	}
	return s
}

// match returns the length of the prefix of line that has the shape, or -1.
func (s *prefixShape) match(line []byte) int {
	i := 0
	for _, t := range s.toks {
		switch t.kind {
		case tokLit:
			if len(line)-i < len(t.lit) || string(line[i:i+len(t.lit)]) != string(t.lit) {
				return -1
			}
			i += len(t.lit)
		case tokDigits:
			j := i
			for j < len(line) && isDigit(line[j]) {
				j++
			}
			if j == i {
				return -1
			}
			i = j
		case tokFrac:
			if i+1 < len(line) && (line[i] == '.' || line[i] == ',') && isDigit(line[i+1]) {
				i++
				for i < len(line) && isDigit(line[i]) {
					i++
				}
			}
		}
	}
	return i
}
