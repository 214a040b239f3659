package release_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opskit/opskit/release"
)

// ExampleNewMetrics counts uploads on the caller's registry: one stored,
// the same again, and one with the wrong secret.
func ExampleNewMetrics() {
	dir, err := os.MkdirTemp("", "opskit-release-metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	reg := prometheus.NewRegistry() // yours, never prometheus.DefaultRegisterer
	m, err := release.NewMetrics(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	rc, err := release.NewReceiver(release.ReceiverConfig{Dir: dir, Secrets: []release.Secret{"s3cret"}, Metrics: m})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	for _, secret := range []release.Secret{"s3cret", "s3cret", "wrong"} {
		up := &release.Uploader{URL: srv.URL, Secret: secret}
		up.Upload(context.Background(), release.Metadata{Product: "app", Version: "1.0.0"}, strings.NewReader("tarball"), 7)
	}
	fams, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, mf := range fams {
		for _, mt := range mf.GetMetric() {
			if mt.GetCounter() == nil || mt.GetCounter().GetValue() == 0 {
				continue // every result is there from the start, at 0
			}
			labels := ""
			for _, l := range mt.GetLabel() {
				labels += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			fmt.Println(mf.GetName()+labels, mt.GetCounter().GetValue())
		}
	}
	// Output:
	// opskit_release_received_bytes_total 14
	// opskit_release_uploads_total{result="created"} 1
	// opskit_release_uploads_total{result="identical"} 1
	// opskit_release_uploads_total{result="unauthorized"} 1
}
