package release

import "io"

// SetWriterWrapper lets tests wrap the tarball's file writer, e.g. to
// simulate a full disk.
func (rc *Receiver) SetWriterWrapper(wrap func(io.Writer) io.Writer) { rc.wrapWriter = wrap }

// ShellQuote exposes shellQuote to the external tests.
var ShellQuote = shellQuote

// SetBuffered turns O_DIRECT off, to test the buffered write path.
func (rc *Receiver) SetBuffered(on bool) { rc.buffered = on }

// EnvFileRoundTrip renders r's release.env and parses it back.
func EnvFileRoundTrip(r Release) (Release, error) { return parseEnvFile(envFile(r)) }
