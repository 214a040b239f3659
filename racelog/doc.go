// Package racelog finds Go race-detector reports in application logs and
// gives each one a title and a stable fingerprint, so that a daily job can
// file one issue per race (see gitlabx.IssueReporter).
//
// The shortest useful program prints the title and fingerprint of every
// race in a log, plain or gzip-compressed:
//
//	f, err := os.Open("app.log")
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer f.Close()
//	s := racelog.NewScanner(f, racelog.Config{})
//	for s.Scan(ctx) {
//		r := s.Report()
//		fmt.Println(r.Fingerprint, r.Title)
//	}
//	if err := s.Err(); err != nil {
//		log.Fatal(err)
//	}
//
// # What is recognised
//
// A report starts at a line ending in "WARNING: DATA RACE" (the line of
// "==================" just before it is kept as the opening) and ends at the
// next "==================". Whatever precedes the marker on its line (a
// timestamp, syslog's "host app[pid]: ", a container runtime's
// "2026-01-02T03:04:05.1Z stderr F ", docker compose's "app-1  | ") is learned
// as the line prefix: digits in it may change from line to line, everything
// else must repeat. Lines of the report carry that prefix, which is stripped;
// other lines (another program's, or ones that do not look like part of a
// report) are interleaved noise and left out. JSON envelopes are recognised
// too: go test -json events, Docker's json-file entries and journalctl -o
// json entries; only the output of the test, stream or process that printed
// the marker belongs to the report. CRLF line ends, old reports without
// addresses ("Read by goroutine 7:"), stacks whose indentation a log shipper
// trimmed, "[failed to restore the stack]" and the "Found N data race(s)" and
// "race detected during execution of test" lines (which end a report whose
// end marker never came) are handled. The markers are configurable with
// Config.
//
// # Speed and memory
//
// Between reports the scanner does no per-line work: it searches large
// buffers for the start marker with bytes.Index. Memory is bounded whatever
// the input: a line is capped at Config.MaxLineBytes and a report at
// Config.MaxReportLines and Config.MaxReportBytes; a report cut short by a
// cap, by the end of the log or by the next report is returned with
// Truncated set.
//
// # Titles and fingerprints
//
// Report.Function is the first frame of the first access as printed;
// Report.Title names the first application frame instead (see
// TitleFunction). Report.Fingerprint ignores addresses, goroutine IDs, PC
// offsets, file paths and line numbers, and the order of the two accesses;
// see Fingerprint for the rules and why line numbers take no part.
//
// # Testing
//
// racelog has no fake of its own: its tests build small racy programs with
// go build -race and parse what they print, and testdata holds logs with
// their parsed form in .golden files (regenerate them with
// go test ./racelog -update). To test code that files the reports, use
// github.com/opskit/opskit/gitlabx/gitlabtest with gitlabx.IssueReporter.
package racelog
