package semtag_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/opskit/opskit/gitlabx/gitlabtest"
	"github.com/opskit/opskit/semtag"
)

const benchTags = 20000

// benchTagNames returns 20,000 messy tag names: releases, pre-releases,
// build metadata and shorthands, all matching search=^v. The highest root release is
// v19.99.8, so the next patch is v19.99.9.
func benchTagNames() []string {
	names := make([]string, 0, benchTags)
	for i := 0; len(names) < benchTags; i++ {
		v := fmt.Sprintf("v%d.%d.%d", i/1000, i/10%100, i%10)
		switch i % 10 {
		case 3:
			v += "-rc.1"
		case 7:
			v += "+build." + fmt.Sprint(i)
		case 9:
			v = fmt.Sprintf("v%d.%d", i/1000, i/10%100) // a shorthand: listed, ignored
		}
		names = append(names, v)
	}
	return names
}

// BenchmarkGitLabTags20k lists 20,000 tags (200 pages of 100) from the
// fake GitLab and decides the next version. It reports the API calls per
// run and fails if any page is fetched twice. SetBytes counts tags, so
// MB/s reads as millions of tags per second. The sub-benchmarks with
// latency add 10 ms to every answer, like a GitLab a few hops away, to
// show what fetching 4 pages at once buys.
func BenchmarkGitLabTags20k(b *testing.B) {
	srv := gitlabtest.NewServer(b)
	srv.AddProject(gitlabtest.Project{ID: pid, Path: "libs/lib"})
	c := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "initial", Files: map[string][]byte{"go.mod": []byte("module example.com/lib/v19\n")}})
	for _, n := range benchTagNames() {
		srv.AddTag(pid, gitlabtest.Tag{Name: n, Commit: c.SHA})
	}
	head := srv.AddCommit(pid, "main", gitlabtest.Commit{Message: "fix: x", Paths: []string{"a.go"}}).SHA
	for _, bc := range []struct {
		name    string
		conc    int
		latency time.Duration
	}{
		{"sequential", 1, 0},
		{"concurrency=4", 4, 0},
		{"latency=10ms/sequential", 1, 10 * time.Millisecond},
		{"latency=10ms/concurrency=4", 4, 10 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv.SetLatency(bc.latency)
			defer srv.SetLatency(0)
			b.SetBytes(benchTags)
			b.ReportAllocs()
			var calls int64
			for b.Loop() {
				srv.ResetRequests()
				repo, err := semtag.NewGitLab(srv.Client(), semtag.GitLabConfig{Project: pid, Commit: head, Concurrency: bc.conc})
				if err != nil {
					b.Fatal(err)
				}
				tg, err := semtag.NewTagger(repo, semtag.Config{DryRun: true})
				if err != nil {
					b.Fatal(err)
				}
				res, err := tg.Run(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if res.Tag != "v19.99.9" {
					b.Fatalf("Run = %q; want v19.99.9", res.Tag)
				}
				calls += repo.APICalls()
				pages := map[string]bool{}
				for _, r := range srv.Requests() {
					if r.Method != http.MethodGet {
						continue
					}
					if pages[r.Query.Encode()] {
						b.Fatalf("page fetched twice: %s", r.Query.Encode())
					}
					pages[r.Query.Encode()] = true
				}
			}
			b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
		})
	}
}

// BenchmarkNext20k is the pure decision over the same 20,000 tags.
func BenchmarkNext20k(b *testing.B) {
	in := semtag.Input{Tags: benchTagNames()}
	b.SetBytes(benchTags)
	b.ReportAllocs()
	for b.Loop() {
		d, err := semtag.Next(in)
		if err != nil || d.Tag != "v19.99.9" {
			b.Fatalf("Next = %+v, %v", d, err)
		}
	}
}

// newTagRepo builds a local repository with the benchmark's 20,000 tags
// (lightweight, created in one git update-ref transaction).
func newTagRepo(b *testing.B) *gitRepo {
	r := newGitRepo(b, false)
	sha := r.commit("initial")
	var in strings.Builder
	for _, n := range benchTagNames() {
		fmt.Fprintf(&in, "create refs/tags/%s %s\n", n, sha)
	}
	cmd := exec.Command(r.git, "update-ref", "--stdin")
	cmd.Dir, cmd.Stdin = r.dir, strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("update-ref: %v: %s", err, out)
	}
	r.run("pack-refs", "--all")
	r.commit("fix: x")
	return r
}

// BenchmarkGitTagger20k decides the next version over a local repository
// with 20,000 tags (git for-each-ref + rev-parse + Next).
func BenchmarkGitTagger20k(b *testing.B) {
	r := newTagRepo(b)
	b.SetBytes(benchTags)
	b.ReportAllocs()
	for b.Loop() {
		tg, err := semtag.NewTagger(r.backend(semtag.GitConfig{}), semtag.Config{DryRun: true})
		if err != nil {
			b.Fatal(err)
		}
		res, err := tg.Run(b.Context())
		if err != nil || res.Tag != "v19.99.9" {
			b.Fatalf("Run = %+v, %v; want v19.99.9", res.Decision, err)
		}
	}
}

// BenchmarkGitTagSort20k is what a user would otherwise run on the same
// repository: git tag --sort=v:refname (which still leaves filtering out
// pre-releases, other prefixes and shorthands to a script).
func BenchmarkGitTagSort20k(b *testing.B) {
	r := newTagRepo(b)
	b.SetBytes(benchTags)
	b.ReportAllocs()
	for b.Loop() {
		cmd := exec.Command(r.git, "tag", "--sort=v:refname", "--list", "v*")
		cmd.Dir = r.dir
		cmd.Env = append(cmd.Environ(), r.env...)
		out, err := cmd.Output()
		if err != nil || len(out) == 0 {
			b.Fatalf("git tag: %v", err)
		}
	}
}

// BenchmarkGitLabTags20kStatic measures semtag's own side of the GitLab
// listing: a minimal server answers 200 pre-rendered pages of 100 tags
// with GitLab's pagination headers, so the time is client-go's requests
// and decoding plus Next, not the fake's bookkeeping. With latency, every
// answer waits 10 ms first, like a GitLab a few hops away.
func BenchmarkGitLabTags20kStatic(b *testing.B) {
	const perPage, pages = 100, benchTags / 100
	names := benchTagNames()
	head := strings.Repeat("b", 40)
	body := make([][]byte, pages)
	for p := range pages {
		var sb strings.Builder
		sb.WriteString("[")
		for i, n := range names[p*perPage : (p+1)*perPage] {
			if i > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, `{"name":%q,"message":"","target":"%s","commit":{"id":"%s","message":"x"},"protected":false}`, n, strings.Repeat("a", 40), strings.Repeat("a", 40))
		}
		sb.WriteString("]")
		body[p] = []byte(sb.String())
	}
	var latency atomic.Int64
	var calls atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(time.Duration(latency.Load()))
		if strings.HasSuffix(r.URL.Path, "/raw") {
			http.Error(w, `{"message":"404 File Not Found"}`, http.StatusNotFound)
			return
		}
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if p < 1 || p > pages {
			p = 1
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Page", strconv.Itoa(p))
		h.Set("X-Per-Page", strconv.Itoa(perPage))
		h.Set("X-Total", strconv.Itoa(benchTags))
		h.Set("X-Total-Pages", strconv.Itoa(pages))
		if p < pages {
			h.Set("X-Next-Page", strconv.Itoa(p+1))
		}
		w.Write(body[p-1])
	}))
	b.Cleanup(hs.Close)
	client, err := gitlab.NewClient("t", gitlab.WithBaseURL(hs.URL+"/api/v4"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		conc    int
		latency time.Duration
	}{
		{"sequential", 1, 0},
		{"concurrency=4", 4, 0},
		{"latency=10ms/sequential", 1, 10 * time.Millisecond},
		{"latency=10ms/concurrency=4", 4, 10 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			latency.Store(int64(bc.latency))
			b.SetBytes(benchTags)
			b.ReportAllocs()
			calls.Store(0)
			for b.Loop() {
				repo, err := semtag.NewGitLab(client, semtag.GitLabConfig{Project: pid, Commit: head, Concurrency: bc.conc})
				if err != nil {
					b.Fatal(err)
				}
				tg, err := semtag.NewTagger(repo, semtag.Config{DryRun: true})
				if err != nil {
					b.Fatal(err)
				}
				res, err := tg.Run(b.Context())
				if err != nil || res.Tag != "v19.99.9" {
					b.Fatalf("Run = %+v, %v; want v19.99.9", res.Decision, err)
				}
			}
			b.ReportMetric(float64(calls.Load())/float64(b.N), "calls/op")
		})
	}
}
