#!/usr/bin/env bash
# bench-semtag: semtag over 20,000 tags.
#  1. Go benchmarks: the GitLab backend listing 20,000 tags in 200 pages from
#     the fake (time and API calls per run; it fails if a page is fetched
#     twice), with and without 10 ms of latency per answer, sequential and 4
#     pages at a time, on the fake and on static pre-rendered pages (semtag's
#     own side without the fake's bookkeeping); the local git backend; `git tag --sort=v:refname`;
#     and Next alone.
#  2. Side by side in one hyperfine run on the same local repository:
#     `auto-version -repo-dir R -dry-run` against `git tag --sort=v:refname`,
#     the tool a user would otherwise reach for (which still leaves the
#     filtering of pre-releases, prefixes and shorthands to a script).
set -euo pipefail
GO=${GO:-go}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== Go benchmarks (20,000 tags; MB/s reads as million tags/s)"
$GO test -run '^$' -bench 'Benchmark(GitLabTags20k|GitLabTags20kStatic|GitTagger20k|GitTagSort20k|Next20k)' -benchtime "${BENCHTIME:-3x}" ./semtag/ | tee "$tmp/bench.txt"
echo
awk '
/^BenchmarkGitLabTags20k\// {
	t = 0; c = 0
	for (i = 1; i <= NF; i++) { if ($(i+1) == "ns/op") t = $i; if ($(i+1) == "calls/op") c = $i }
	name = $1; sub(/^BenchmarkGitLabTags20k\//, "", name); sub(/-[0-9]+$/, "", name)
	printf "GitLab fake, 20,000 tags in 200 pages, %-28s %6.2f s/run, %d API calls/run (200 tag pages + 1 go.mod read), no page fetched twice\n", name ":", t / 1e9, c
}
/^BenchmarkGitLabTags20kStatic\// {
	t = 0; c = 0
	for (i = 1; i <= NF; i++) { if ($(i+1) == "ns/op") t = $i; if ($(i+1) == "calls/op") c = $i }
	name = $1; sub(/^BenchmarkGitLabTags20kStatic\//, "", name); sub(/-[0-9]+$/, "", name)
	printf "static pages (semtag side only), 20,000 tags, %-28s %6.2f s/run, %d API calls/run\n", name ":", t / 1e9, c
}
/^BenchmarkNext20k/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") printf "Next alone over 20,000 tags: %.1f ms\n", $i / 1e6 }
/^BenchmarkGitTagger20k/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") a = $i }
/^BenchmarkGitTagSort20k/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") b = $i }
END { if (a && b) printf "local repo, 20,000 tags: semtag Tagger %.0f ms, git tag --sort=v:refname %.0f ms, ratio %.2f\n", a / 1e6, b / 1e6, a / b }
' "$tmp/bench.txt"

echo
echo "== hyperfine: auto-version -dry-run vs git tag --sort=v:refname, same repository with 20,000 tags"
command -v git >/dev/null || { echo "git not found"; exit 1; }
$GO build -o "$tmp/auto-version" ./examples/auto-version # before HOME changes below
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME="$tmp" \
	GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.com GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.com
repo="$tmp/repo"
git init -q -b main "$repo"
git -C "$repo" commit -q --allow-empty -m initial
sha=$(git -C "$repo" rev-parse HEAD)
awk -v sha="$sha" 'BEGIN { for (i = 0; i < 20000; i++) {
	v = sprintf("v%d.%d.%d", int(i/1000), int(i/10)%100, i%10)
	if (i%10 == 3) v = v "-rc.1"; else if (i%10 == 7) v = v "+build." i; else if (i%10 == 9) v = sprintf("v%d.%d", int(i/1000), int(i/10)%100)
	printf "create refs/tags/%s %s\n", v, sha } }' | git -C "$repo" update-ref --stdin
git -C "$repo" pack-refs --all
git -C "$repo" commit -q --allow-empty -m "fix: x"
echo "auto-version says: $("$tmp/auto-version" -repo-dir "$repo" -dry-run)"
if command -v hyperfine >/dev/null; then
	hyperfine -N --warmup 2 --runs "${RUNS:-20}" \
		"git -C $repo tag --sort=v:refname --list v*" \
		"$tmp/auto-version -repo-dir $repo -dry-run"
else
	echo "hyperfine not found; skipping the side-by-side run"
fi
