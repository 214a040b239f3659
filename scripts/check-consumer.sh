#!/usr/bin/env bash
# check-consumer: builds a throwaway module, outside the repository, that
# imports every public opskit package next to GitLab's client and current
# gRPC (what a user's internal tool looks like), and runs go mod tidy, go build
# and go vet there. It fails when a consumer of this checkout would hit an
# ambiguous import or a stale module (the goexpect -> grpc v1.31 -> 2019
# genproto chain did).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/opskit-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

pkgs=$(cd "$repo" && go list -f '{{if not (or (eq .Name "main") (.Module.Main | not))}}{{.ImportPath}}{{end}}' ./... |
	grep -v -e '/internal/' -e '/internal$' -e '/scripts/' -e '/examples/')

cat > go.mod <<MOD
module example.com/consumer

go $(cd "$repo" && go list -m -f '{{.GoVersion}}')

replace github.com/opskit/opskit => $repo
MOD

{
	echo 'package main'
	echo
	echo 'import ('
	for p in $pkgs; do echo "	_ \"$p\""; done
	echo '	_ "gitlab.com/gitlab-org/api/client-go"'
	echo '	_ "google.golang.org/grpc"'
	echo '	_ "google.golang.org/genproto/googleapis/rpc/status"'
	echo '	_ "google.golang.org/genproto/googleapis/rpc/errdetails"'
	echo ')'
	echo
	echo 'func main() {}'
} > main.go

# The consumer asks for opskit at a placeholder version; replace points it at the checkout.
# It already uses current gRPC, as any module with an OpenTelemetry gRPC exporter or a gRPC
# client does: that is what made the 2019 genproto ambiguous against googleapis/rpc.
go mod edit -require=github.com/opskit/opskit@v0.0.0-00010101000000-000000000000 \
	-require=google.golang.org/grpc@${CONSUMER_GRPC_VERSION:-v1.85.0}
echo "consumer module in $work imports $(echo "$pkgs" | wc -w) opskit packages, client-go and grpc"
go mod tidy
go build ./...
go vet ./...
echo "consumer module: go mod tidy, go build and go vet passed"
