package observe

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/opskit/opskit/internal/atomicfile"
)

// WriteTextfile writes what g gathers to path in the text format that
// node_exporter's textfile collector reads (no timestamps), atomically: a
// temporary file beside path (not matching *.prom) is fsync'd and renamed
// over it, so the collector never reads half a file. path must end in
// ".prom". Errors: a bad name, the gathering's error, or the file system's.
// The file is mode 0644, for node_exporter's user.
func WriteTextfile(path string, g prometheus.Gatherer) error {
	if !strings.HasSuffix(filepath.Base(path), ".prom") {
		return fmt.Errorf("observe: textfile %s: the textfile collector reads only *.prom", path)
	}
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("observe: textfile %s: %w", path, err)
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return fmt.Errorf("observe: textfile: %w", err)
	}
	defer f.Abort()
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(f, mf); err != nil {
			return fmt.Errorf("observe: textfile %s: %w", path, err)
		}
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("observe: textfile: %w", err)
	}
	return nil
}
