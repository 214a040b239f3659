package gitlabx_test

import (
	"regexp"
	"testing"

	"github.com/opskit/opskit/gitlabx"
	"github.com/opskit/opskit/gitlabx/gitlabtest"
)

func TestReadyMadeVersionSourcesKeepTheContract(t *testing.T) {
	tests := []struct {
		name  string
		src   gitlabx.VersionSource
		files map[string]string
		want  string
	}{
		{"VERSION file", gitlabx.VersionFile("VERSION"), map[string]string{"VERSION": "1.4.2\n"}, "1.4.2"},
		{"regexp over a Go file", gitlabx.VersionRegexp("version.go", regexp.MustCompile(`const Version = "([^"]+)"`)),
			map[string]string{"version.go": "package app\n\nconst Version = \"2.0.1\"\n"}, "2.0.1"},
		{"package.json", gitlabx.PackageJSON("package.json"), map[string]string{"package.json": `{"name":"web","version":"3.1.0"}`}, "3.1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gitlabtest.TestVersionSource(t, tt.src, tt.files, tt.want)
		})
	}
}
