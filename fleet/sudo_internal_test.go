package fleet

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
)

// pipeRecorder is sudo's stdin as the filter sees it.
type pipeRecorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	closed chan struct{}
	once   sync.Once
}

func (p *pipeRecorder) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *pipeRecorder) Close() error { p.once.Do(func() { close(p.closed) }); return nil }

func (p *pipeRecorder) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// TestSudoFilterSplitWrites: the prompt and the start marker are found
// however sudo's stderr is cut into writes, cut out of the stderr kept,
// the password is sent once, and the command's stdin follows it only after
// the marker.
func TestSudoFilterSplitWrites(t *testing.T) {
	for _, chunk := range []int{1, 2, 3, 7, 1000} {
		r := newSudoRun(&Sudo{Password: func(string) (string, error) { return "pw", nil }}, "h")
		in := &pipeRecorder{closed: make(chan struct{})}
		var errOut bytes.Buffer
		r.stdin, r.errOut, r.cmdIn = in, &errOut, strings.NewReader("data\n")
		stream := "warning: lecture\n" + r.prompt + r.marker + "cmd err\n"
		for i := 0; i < len(stream); i += chunk {
			r.Write([]byte(stream[i:min(i+chunk, len(stream))]))
		}
		<-in.closed // the copy of stdin ended
		if err := r.finish(); err != nil {
			t.Fatalf("chunk %d: finish = %v", chunk, err)
		}
		if got, want := errOut.String(), "warning: lecture\ncmd err\n"; got != want {
			t.Errorf("chunk %d: stderr kept %q; want %q", chunk, got, want)
		}
		if got := in.String(); got != "pw\ndata\n" {
			t.Errorf("chunk %d: sudo's stdin got %q; want the password, then the command's stdin", chunk, got)
		}
	}
	var _ io.WriteCloser = (*pipeRecorder)(nil)
}
