// Package racelog finds Go race-detector reports in application logs, gives
// each one a title and a stable fingerprint, and groups them into races, so
// that a daily job can file one issue per race (see gitlabx.IssueReporter
// and gitlabx.RaceReport).
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
// TitleFunction).
//
// Report.Fingerprint is the race, not the report: the pair of racing code
// locations (the first application frame of each access, function and file
// name), order-free, with the access kinds left out. A counter++ racing
// with itself is printed as "Read at ... Previous write" by one run and as
// "Write at ... Previous write" by the next; a map read racing with a write
// is printed once through runtime.mapaccess1 and once through the map
// header. Each is one race, fixed by one change, and has one fingerprint.
// Addresses, goroutine IDs, PC offsets, directories and line numbers take
// no part; see Fingerprint for the rules and why. Report.Variant is the
// finer signature that tells those reports apart (it was the fingerprint
// before this rule, so issues filed under it can be found), and
// Report.Shape names the kinds ("Read/Write", "Write/Write").
//
// # Grouping
//
// A Collector groups reports by fingerprint into Races, with the number of
// occurrences, the first and last sighting, the variants with counts, and
// the hosts and files; Collect does it for a slice. A daily job over
// several logs:
//
//	var races racelog.Collector
//	for _, path := range logs {
//		f, err := os.Open(path)
//		if err != nil {
//			return err
//		}
//		err = races.Scan(ctx, f, racelog.Config{}, racelog.Sighting{Host: host, File: path})
//		f.Close()
//		if err != nil {
//			return err
//		}
//	}
//	for _, rc := range races.Races() {
//		fmt.Println(rc.Occurrences, rc.Title, len(rc.Variants))
//	}
//
// # Testing
//
// racelog has no fake of its own: its tests build small racy programs with
// go build -race and parse what they print, and testdata holds logs with
// their parsed form in .golden files (regenerate them with
// go test ./racelog -update). To test code that files the reports, use
// github.com/opskit/opskit/gitlabx/gitlabtest with gitlabx.IssueReporter.
package racelog
