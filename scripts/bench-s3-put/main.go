// Command bench-s3-put is the direct-S3 baseline of scripts/bench-release.sh:
// what a user would otherwise do to put a release in a bucket, after
// `openssl dgst -sha256 FILE`. It sends FILE with one plain PutObject
// (minio-go v7, no multipart, no aws-chunked signing, x-amz-checksum-sha256
// as a plain signed header, so the object store verifies the bytes), with
// the same options release/s3store uses for release.tgz except the
// create-only If-None-Match: * (a plain put; it costs nothing measurable).
//
//	bench-s3-put -endpoint http://127.0.0.1:7070 -bucket bench -credentials-file F -key k -sha256 HEX FILE
//
// It prints nothing on success and exits 1 with the error otherwise.
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint `URL` (http://host:port)")
	bucket := flag.String("bucket", "", "bucket `NAME`")
	key := flag.String("key", "", "object `KEY`")
	credsFile := flag.String("credentials-file", "", "`FILE` with AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines")
	sum := flag.String("sha256", "", "hex SHA-256 of the file (from openssl dgst -sha256)")
	region := flag.String("region", "us-east-1", "S3 `region` (as release-server's -s3-region; saves the bucket-location request)")
	flag.Parse()
	if err := run(*endpoint, *bucket, *key, *credsFile, *sum, *region, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "bench-s3-put:", err)
		os.Exit(1)
	}
}

func run(endpoint, bucket, key, credsFile, sumHex, region string, args []string) error {
	if len(args) != 1 || bucket == "" || key == "" || credsFile == "" {
		return errors.New("usage: bench-s3-put -endpoint URL -bucket B -key K -credentials-file F -sha256 HEX FILE")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-endpoint %q: want http://host:port", endpoint)
	}
	sum, err := hex.DecodeString(sumHex)
	if err != nil || len(sum) != 32 {
		return fmt.Errorf("-sha256 %q: want 64 hex digits", sumHex)
	}
	data, err := os.ReadFile(credsFile)
	if err != nil {
		return err
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			vars[k] = v
		}
	}
	mc, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(vars["AWS_ACCESS_KEY_ID"], vars["AWS_SECRET_ACCESS_KEY"], ""),
		Secure: u.Scheme == "https",
		Region: region,
	})
	if err != nil {
		return err
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = mc.PutObject(context.Background(), bucket, key, f, fi.Size(), minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		DisableMultipart:     true,
		DisableContentSha256: true,
		UserMetadata:         map[string]string{"X-Amz-Checksum-Sha256": base64.StdEncoding.EncodeToString(sum)},
	})
	return err
}
