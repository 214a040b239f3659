package freshdesk_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// Speed run of issue 7: a ticket with 300 conversations and 50 attachments
// (10 MiB in all), both fakes answering every call after 20 ms.
const (
	benchConversations = 300
	benchAttachments   = 50
	benchTotalBytes    = 10 << 20
	benchLatency       = 20 * time.Millisecond
)

func BenchmarkEscalate(b *testing.B) {
	for _, parallel := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			benchEscalate(b, benchConversations, parallel)
		})
	}
}

// BenchmarkEscalateAttachments is the same load with the 50 attachments on
// 10 conversations, so that copying files, not writing notes in order,
// dominates: this is where the bound on parallel copies shows.
func BenchmarkEscalateAttachments(b *testing.B) {
	for _, parallel := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			benchEscalate(b, 10, parallel)
		})
	}
}

func benchEscalate(b *testing.B, conversations, parallel int) {
	b.ReportAllocs()
	b.SetBytes(benchTotalBytes)
	var peakSum, transientSum float64
	for range b.N {
		b.StopTimer()
		fd := freshdesktest.New()
		gl := gitlabtest.New()
		gl.AddProject(gitlabtest.Project{ID: 7, Path: "acme/exporter"})
		tk := fd.AddTicket(freshdesktest.Ticket{Subject: "speed run", Description: "<p>300 conversations, 50 attachments</p>"})
		size := benchTotalBytes / benchAttachments
		perConv := benchAttachments / conversations
		if perConv == 0 {
			perConv = 1
		}
		every := max(conversations/benchAttachments, 1)
		for i := range conversations {
			c := freshdesktest.Conversation{Body: fmt.Sprintf("<p>conversation %d</p>", i), Incoming: i%2 == 0, CreatedAt: time.Unix(int64(1e9+i), 0)}
			if i%every == 0 {
				for j := range perConv {
					c.Attachments = append(c.Attachments, freshdesktest.Attachment{Name: fmt.Sprintf("file-%d-%d.bin", i, j), Content: bytes.Repeat([]byte{byte(i + j)}, size)})
				}
			}
			fd.AddConversation(tk.ID, c)
		}
		fd.SetLatency(benchLatency)
		gl.SetLatency(benchLatency)
		br, err := freshdesk.NewBridge(freshdesk.BridgeConfig{Freshdesk: fd.Client(), GitLab: gl.Client(), Project: 7,
			FreshdeskURL: "https://acme.freshdesk.com", Parallel: parallel})
		if err != nil {
			b.Fatal(err)
		}
		base := heapAfterGC()
		stop := sampleHeap()
		b.StartTimer()
		esc, err := br.Escalate(b.Context(), tk.ID)
		b.StopTimer()
		peak := stop()
		if err != nil {
			b.Fatal(err)
		}
		if esc.NotesAdded != conversations || esc.AttachmentsCopied != benchAttachments {
			b.Fatalf("escalation = %+v; want %d notes and %d attachments", esc, conversations, benchAttachments)
		}
		retained := heapAfterGC() // what the fakes keep: uploads, recorded request bodies, notes
		peakSum += float64(peak-base) / (1 << 20)
		transientSum += float64(peak-retained) / (1 << 20)
		fd.Close()
		gl.Close()
		b.StartTimer()
	}
	b.ReportMetric(peakSum/float64(b.N), "peak-heap-MiB")
	b.ReportMetric(transientSum/float64(b.N), "transient-heap-MiB")
}

func heapAfterGC() uint64 {
	runtime.GC()
	return heapNow()
}

func heapNow() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sampleHeap samples the live heap every millisecond until the returned
// function is called, which returns the highest value seen.
func sampleHeap() func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if h := heapNow(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// BenchmarkEscalateLargeAttachment copies one 256 MiB attachment. The fake
// Freshdesk generates it on the fly and the GitLab upload endpoint in front
// of gitlabtest only hashes what arrives, so the peak heap measured is the
// bridge's own: it stays flat because the file is streamed.
func BenchmarkEscalateLargeAttachment(b *testing.B) {
	const size = 256 << 20
	b.ReportAllocs()
	b.SetBytes(size)
	want := sha256.New()
	if _, err := io.CopyN(want, &patternReader{}, size); err != nil {
		b.Fatal(err)
	}
	wantSum := hex.EncodeToString(want.Sum(nil))
	var peakSum float64
	for range b.N {
		b.StopTimer()
		fd := freshdesktest.New()
		gl := gitlabtest.New()
		gl.AddProject(gitlabtest.Project{ID: 7, Path: "acme/exporter"})
		var got atomic.Value
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/uploads") {
				gl.ServeHTTP(w, r)
				return
			}
			mr, err := r.MultipartReader()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			p, err := mr.NextPart()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			h := sha256.New()
			if _, err := io.Copy(h, p); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			got.Store(hex.EncodeToString(h.Sum(nil)))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"alt":%q,"url":"/uploads/x/%s","markdown":"[%s](/uploads/x/%s)"}`, p.FileName(), p.FileName(), p.FileName(), p.FileName())
		}))
		tk := fd.AddTicket(freshdesktest.Ticket{Subject: "large"})
		fd.AddConversation(tk.ID, freshdesktest.Conversation{Body: "<p>dump attached</p>", Incoming: true,
			Attachments: []freshdesktest.Attachment{{Name: "core.dump", Size: size}}})
		glc, err := gitlab.NewClient(gl.Token(), gitlab.WithBaseURL(front.URL))
		if err != nil {
			b.Fatal(err)
		}
		br, err := freshdesk.NewBridge(freshdesk.BridgeConfig{Freshdesk: fd.Client(), GitLab: glc, Project: 7,
			FreshdeskURL: "https://acme.freshdesk.com", MaxUploadSize: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		base := heapAfterGC()
		stop := sampleHeap()
		b.StartTimer()
		esc, err := br.Escalate(b.Context(), tk.ID)
		b.StopTimer()
		peak := stop()
		if err != nil {
			b.Fatal(err)
		}
		if esc.AttachmentsCopied != 1 || got.Load() != wantSum {
			b.Fatalf("escalation = %+v, upload sha256 %v; want 1 attachment with sha256 %s", esc, got.Load(), wantSum)
		}
		peakSum += float64(peak-base) / (1 << 20)
		front.Close()
		fd.Close()
		gl.Close()
		b.StartTimer()
	}
	b.ReportMetric(peakSum/float64(b.N), "peak-heap-MiB")
}

// patternReader yields freshdesktest's generated attachment content.
type patternReader struct{ off int }

func (p *patternReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte((p.off + i) % 251)
	}
	p.off = (p.off + len(b)) % 251
	return len(b), nil
}
