package s3store_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/opskit/opskit/release"
	"github.com/opskit/opskit/release/s3store"
	"github.com/opskit/opskit/release/s3store/s3storetest"
)

// BenchmarkPut splits the S3 path's time: Store.Put of a staged tarball
// (lease, create-only PUT with the checksum header, env, json, hook-done)
// against one plain PutObject of the same file with the same checksum
// header, on one versitygw. BENCH_PUT_MIB sets the size (default 16).
func BenchmarkPut(b *testing.B) {
	mib := 16
	if v, err := strconv.Atoi(os.Getenv("BENCH_PUT_MIB")); err == nil && v > 0 {
		mib = v
	}
	gw := s3storetest.NewGateway(b)
	mc := gw.Client(b)
	stage := b.TempDir()
	data := make([]byte, mib<<20)
	rand.Read(data)
	h := sha256.Sum256(data)
	if err := os.WriteFile(filepath.Join(stage, release.TarballName), data, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stage, release.EnvName), []byte("RELEASE_PRODUCT=bench\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	st, err := s3store.New(s3store.Config{Client: mc, Bucket: gw.Bucket, ServerID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	rel := release.Release{Metadata: release.Metadata{Product: "bench"}, SHA256: hex.EncodeToString(h[:]), Size: int64(len(data))}
	b.Run("store-put", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := range b.N {
			rel.Version = fmt.Sprintf("1.%d", i)
			if err := st.Put(b.Context(), stage, rel, false); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := st.Delete(b.Context(), rel.Product, rel.Version); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("direct-put", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := range b.N {
			f, err := os.Open(filepath.Join(stage, release.TarballName))
			if err != nil {
				b.Fatal(err)
			}
			_, err = mc.PutObject(b.Context(), gw.Bucket, fmt.Sprintf("direct/%d", i), f, int64(len(data)), minio.PutObjectOptions{
				DisableMultipart: true, DisableContentSha256: true,
				UserMetadata: map[string]string{"X-Amz-Checksum-Sha256": base64.StdEncoding.EncodeToString(h[:])},
			})
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			mc.RemoveObject(b.Context(), gw.Bucket, fmt.Sprintf("direct/%d", i), minio.RemoveObjectOptions{})
			b.StartTimer()
		}
	})
}
