package main

import (
	"fmt"
	"strings"
)

// limits explains, from this run's own profiles, what bounds each missed target (and the warm-tag
// path, met or not, since its profile is the cheapest way to see where a request goes).
func (r *Report) limits() []string {
	var out []string
	missed := func(prefix string) bool {
		for _, c := range r.Checks {
			if strings.HasPrefix(c.Target, prefix) && c.Met == "no" {
				return true
			}
		}
		return false
	}
	share := func(scenarioPrefix, fn string) (float64, bool) {
		for _, p := range r.Profiles {
			if !strings.HasPrefix(p.Scenario, scenarioPrefix) {
				continue
			}
			for _, s := range p.Inclusive {
				if s.Name == fn {
					return s.Percent, true
				}
			}
		}
		return 0, false
	}
	pct := func(scenario, fn string) string {
		if v, ok := share(scenario, fn); ok {
			return fmt.Sprintf("%.0f%%", v)
		}
		return "n/a"
	}
	if missed("blob, 1 client") {
		s := "blob, 1 client:"
		if d, ok := findBlob(r.Blob, "direct", "", 1); ok && r.sha256Limit() > 0 {
			s += fmt.Sprintf(" hashing alone caps a verifying proxy at %.2f× direct here (SHA-256 %.0f MB/s on one core vs direct %.0f MB/s).",
				r.sha256Limit()/d.MBps, r.sha256Limit(), d.MBps)
		}
		const b = "blob streaming"
		s += fmt.Sprintf(" In trustgate's profile the download (fanout fill: read upstream, write the spool) is %s of its CPU, SHA-256 %s and the spool pwrite %s;",
			pct(b, "proxy/fanout.(*Group).fill"), pct(b, "crypto/internal/fips140/sha256.blockSHANI.abi0"), pct(b, "syscall.pwrite"))
		s += fmt.Sprintf(" serving the client (fanout tail) is %s, of which sendfile from the spool %s, socket writes %s and spool reads %s.",
			pct(b, "proxy/fanout.(*Group).tail"), pct(b, "internal/poll.SendFile"), pct(b, "syscall.write"), pct(b, "syscall.pread"))
		s += " The spool is a real file: each cold pull writes the whole blob through the page cache (ext4), so its speed also depends on the filesystem and writeback, a likely source of the spread between rounds."
		out = append(out, s)
	}
	if missed("blob, 16 client") {
		out = append(out, "blob, 16 clients: see the 1-client note; with 16 readers the spool is read from page cache 16 times, and the 2 cores are shared with 16 client connections and the upstream.")
	}
	if missed("blob, 1 client(s), warm") || missed("blob, 16 client(s), warm") {
		const b = "blob streaming, 1 client, warm"
		out = append(out, fmt.Sprintf("blob, warm: in the profile of a warm 1-client pull, sendfile from the retained spool is %s of trustgate's CPU and socket writes %s; the rest is the client and the upstream-free request path, on cores shared with the client.",
			pct(b, "internal/poll.SendFile"), pct(b, "syscall.write")))
	}
	if missed("blob over a") {
		out = append(out, "blob over a link: trustgate adds a hop (upstream → link → trustgate → client) whose CPU — the hash, the spool write and the send — shares the 2 cores with the link, the upstream and the client.")
	}
	if missed("peak RSS") {
		out = append(out, "peak RSS: above 100 MiB at 16 clients; the fan-out's per-client buffers or the HTTP transport's are the first suspects (not profiled for memory here).")
	}
	const t = "warm signed-tag"
	if _, ok := share(t, "proxy.(*Server).ServeHTTP"); ok {
		s := fmt.Sprintf("warm tag (profile of the GET round): trustgate's handler is %s of its CPU; net/http's connection loop, which includes it, %s (write syscalls, socket and log, %s; request parsing %s);",
			pct(t, "proxy.(*Server).ServeHTTP"), pct(t, "net/http.(*conn).serve"), pct(t, "syscall.write"), pct(t, "net/http.(*conn).readRequest"))
		s += fmt.Sprintf(" inside the handler the decision log record (slog JSON to stderr) is %s, regular expressions (name validation via distribution/reference, gorilla/mux routes) %s, the trust cache lookup %s.",
			pct(t, "proxy.(*Server).logDecision"), pct(t, "regexp.(*Regexp).doExecute"), pct(t, "cache.(*Cache).Resolve"))
		if missed("warm signed-tag") {
			s += " On 2 cores the load generator needs about as much CPU as the server, so the rate is bounded by the shared cores before trustgate's own work."
		}
		out = append(out, s)
	}
	if missed(r.Config["herd"] + " concurrent") {
		out = append(out, "herd: more than one upstream fetch or Notary chain; see the counts in scenario 4.")
	}
	return out
}
