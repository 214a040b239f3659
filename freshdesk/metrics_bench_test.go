package freshdesk_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opskit/opskit/freshdesk"
	"github.com/opskit/opskit/freshdesk/freshdesktest"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/observe"
)

// Instrumentation overhead (issue 20): one escalation of a ticket with 20
// conversations and 4 attachments of 64 KiB between the fakes, answering at
// once so that the bridge's own work is what is measured, with the bridge
// and both clients bare, and with metrics and tracing on (observe
// transports, freshdesk.Metrics, spans sampled and batched to an exporter
// that drops them). Compare the two side by side in one run:
// scripts/bench-freshdesk-obs.sh.
const (
	obsConversations = 20
	obsAttachments   = 4
	obsFileSize      = 64 << 10
)

func BenchmarkEscalateObserved(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "metrics+tracing"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(obsAttachments * obsFileSize)
			var tp *sdktrace.TracerProvider
			if on {
				tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				defer tp.Shutdown(b.Context())
			}
			for range b.N {
				b.StopTimer()
				fd := freshdesktest.New()
				gl := gitlabtest.New()
				gl.AddProject(gitlabtest.Project{ID: 7, Path: "acme/exporter"})
				tk := fd.AddTicket(freshdesktest.Ticket{Subject: "observed", Description: "<p>instrumentation overhead</p>"})
				for i := range obsConversations {
					c := freshdesktest.Conversation{Body: fmt.Sprintf("<p>conversation %d</p>", i), Incoming: true, CreatedAt: time.Unix(int64(1e9+i), 0)}
					if i%(obsConversations/obsAttachments) == 0 {
						c.Attachments = []freshdesktest.Attachment{{Name: fmt.Sprintf("f%d.bin", i), Content: bytes.Repeat([]byte{byte(i)}, obsFileSize)}}
					}
					fd.AddConversation(tk.ID, c)
				}
				fcfg := fd.Config()
				var glOpts []gitlab.ClientOptionFunc
				bc := freshdesk.BridgeConfig{Project: 7, FreshdeskURL: "https://acme.freshdesk.com"}
				if on {
					reg := prometheus.NewRegistry()
					fdm, err := observe.NewClientMetrics(reg, "freshdesk")
					if err != nil {
						b.Fatal(err)
					}
					glm, err := observe.NewClientMetrics(reg, "gitlab")
					if err != nil {
						b.Fatal(err)
					}
					fcfg.HTTPClient = &http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{Metrics: fdm, TracerProvider: tp, Endpoint: freshdesk.Endpoint})}
					glOpts = append(glOpts, gitlab.WithHTTPClient(&http.Client{Transport: observe.NewTransport(nil, observe.TransportConfig{Metrics: glm, TracerProvider: tp})}))
					if bc.Metrics, err = freshdesk.NewMetrics(reg); err != nil {
						b.Fatal(err)
					}
					bc.TracerProvider = tp
				}
				fc, err := freshdesk.New(fcfg)
				if err != nil {
					b.Fatal(err)
				}
				bc.Freshdesk, bc.GitLab = fc, gl.Client(glOpts...)
				br, err := freshdesk.NewBridge(bc)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				esc, err := br.Escalate(b.Context(), tk.ID)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if esc.NotesAdded != obsConversations || esc.AttachmentsCopied != obsAttachments {
					b.Fatalf("escalation = %+v; want %d notes and %d attachments", esc, obsConversations, obsAttachments)
				}
				fd.Close()
				gl.Close()
				b.StartTimer()
			}
		})
	}
}
