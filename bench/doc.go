// Package bench holds the measuring tools behind `make bench`: a counting reverse proxy that shows
// exactly which requests reach the Notary server and the upstream registry, a closed-loop load
// generator with latency percentiles, and small writers for the report (markdown, SVG).
//
// The driver that starts the real peers and runs the scenarios is bench/cmd/report. It is a
// program rather than a test because a benchmark report makes no pass/fail claim: nothing here may
// fail `make test` on a speed figure, and a test that silently skips unless an environment variable
// is set would look like a passing check while checking nothing.
package bench
