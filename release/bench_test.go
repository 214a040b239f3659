package release_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/opskit/opskit/release"
)

// BenchmarkUploadLoopback measures the whole path: Uploader → HTTP over
// loopback → Receiver → fsynced file in a temporary directory.
func BenchmarkUploadLoopback(b *testing.B) {
	const size = 64 << 20
	rc, _ := newReceiver(b, release.ReceiverConfig{})
	srv := httptest.NewServer(rc)
	b.Cleanup(srv.Close)
	up := &release.Uploader{URL: srv.URL, Secret: testSecret}
	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		md := release.Metadata{Product: "bench", Version: fmt.Sprintf("1.0.%d", i)}
		if _, err := up.Upload(b.Context(), md, io.LimitReader(zeros{}, size), size); err != nil {
			b.Fatal(err)
		}
	}
}
