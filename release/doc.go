// Package release moves release tarballs from a build server to an update
// server over a small HTTP release API, so that a release that arrives is
// exactly what the build produced, or is not there at all.
//
// Three parts:
//
//   - [Receiver], the release API: an http.Handler for POST /release that
//     streams the multipart upload to disk while hashing it, verifies the
//     checksum, stores Dir/<product>/<version>/{release.tgz,release.env}
//     atomically and runs a [Hook] such as [ScriptHook].
//   - [Uploader], the build-server side: streams a file and its [Metadata]
//     with constant memory and returns a [Receipt] once the receiver
//     confirmed the checksum.
//   - [Fetch], the "validate checksum or download" step: it downloads only
//     when the destination lacks the checksum and never leaves a partial file.
//
// The shortest useful receiver:
//
//	rc, err := release.NewReceiver(release.ReceiverConfig{
//		Dir:     "/var/lib/releases",
//		Secrets: []release.Secret{release.Secret(os.Getenv("RELEASE_SECRET"))},
//		Hook:    release.ScriptHook("/etc/release/deploy.sh", 10*time.Minute, logger),
//	})
//	if err != nil {
//		return err
//	}
//	http.Handle("POST /release", rc)
//
// and uploader:
//
//	up := &release.Uploader{URL: "https://updates.example/release", Secret: secret}
//	rcpt, err := up.UploadFile(ctx, release.Metadata{Product: "app", Version: "1.4.2"}, "release.tgz")
//
// The uploader checks the Metadata with the receiver's rules
// ([Metadata.Validate]) before it connects, so a bad name costs nothing and
// the *FieldError says which rule it broke. Every *StatusError names the
// method and the URL, without user info or query values. Progress receives
// the Metadata of the upload it reports, so one Uploader serves concurrent
// uploads. Migration: Progress used to be func(sent, total int64); add a
// first parameter, func(md release.Metadata, sent, total int64), and key
// per-upload state by md.Product and md.Version.
//
// A [Secret] is an alias of opskit.Secret, the SDK's one secret type: it
// never prints (fmt, slog, JSON), and release.Secret(s) and opskit.Secret(s)
// are interchangeable. Migration: release.Secret used to be a type of its
// own; conversions and constants keep compiling, and a Secret now also
// encodes as "REDACTED" in JSON. Read one with opskit.SecretFromFile or
// opskit.SecretFromEnv.
//
// Legacy clients keep working unchanged: the receiver accepts the secret as
// a form field and an md5 field instead of sha256, as in
//
//	curl -F secret=$DEPLOY_SECRET -F product=app -F version=1.4.2 \
//	     -F file=@release.tgz -F md5=$(md5sum release.tgz | cut -d' ' -f1) $URL
//
// A release is served (Receiver.Files) only once its hook succeeded; call
// Receiver.RunPendingHooks at startup so that a release whose hook a crash
// cut off gets it run again. Unauthenticated requests are cheap (a few KiB,
// AuthTimeout), and at most MaxConcurrentUploads uploads run at once.
//
// # Stores, serving and fetching
//
// The Receiver keeps releases in a [Store]: [DirStore] (the default, the
// layout above) or the S3 store of package
// [github.com/opskit/opskit/release/s3store], where several update servers
// share one bucket. [Receiver.Files] serves either with ETag, Repr-Digest
// (RFC 9530) and Range. [Fetch] with an empty checksum verifies against
// Repr-Digest; [Fetcher.Resume] continues an interrupted download with
// Range; [ExistsOrDownload] keeps any existing file.
//
// Large releases over slow links: [Receiver.Uploads] is a tus 1.0
// resumable-upload endpoint (creation, checksum, expiration, termination)
// and [Uploader.UploadFileResumable] continues an interrupted upload from
// the receiver's offset; the legacy form upload is unchanged.
//
// # Metrics and traces
//
// [NewMetrics] registers the receiver's metrics on a registry you pass
// (opskit_release_uploads_total by result, bytes received, upload and hook
// durations, hooks by result, uploads in flight); set it as
// ReceiverConfig.Metrics. ReceiverConfig.TracerProvider opens a span per
// upload request with the hook as a child span. Both are off when nil:
//
//	m, err := release.NewMetrics(reg) // reg is yours, never the global registry
//	rc, err := release.NewReceiver(release.ReceiverConfig{Dir: dir, Secrets: []release.Secret{secret},
//		Metrics: m, TracerProvider: tp})
//
// release.env holds PRODUCT, VERSION, TAG, BUILD, REVISION, COMMIT, RPMS,
// SIZE, SHA256, MD5 and LOG, each value single-quoted, so `. release.env`
// in a POSIX shell assigns variables and runs nothing, whatever the
// changelog contains.
//
// # Testing
//
// Package [github.com/opskit/opskit/release/releasetest] runs a real
// Receiver on loopback with a temporary directory; it serves the stored
// files for Fetch, records the releases its hook saw and can corrupt uploads
// in transit:
//
//	srv := releasetest.NewServer(t)
//	rcpt, err := srv.Uploader().UploadFile(ctx, md, "release.tgz")
//
// releasetest.TestStore checks a [Store] implementation of your own against
// the contract the Receiver relies on.
package release
