package fanout

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// The cold-path CPU benchmark runs the upstream and the client in child
// processes (this test binary started again with coldHelperEnv set), so the
// getrusage figures of the benchmark process are the fan-out's alone: the
// upstream download, the hash, the spool and serving the client.
const coldHelperEnv = "FANOUT_COLD_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(coldHelperEnv) {
	case "upstream":
		coldUpstream(os.Getenv("FANOUT_COLD_FILE"))
	case "client":
		coldClient()
	default:
		os.Exit(m.Run())
	}
}

// coldUpstream serves a file to every GET (with Range, by sendfile, as a
// registry serving from disk does) and prints its address. With
// FANOUT_COLD_PIECE=n it plays an upstream slower than the fan-out instead:
// whole-file GETs get n bytes at a time, each flushed and followed by a
// 50 µs pause, so the fan-out's reads return about n bytes.
func coldUpstream(path string) {
	piece, _ := strconv.Atoi(os.Getenv("FANOUT_COLD_PIECE"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		if piece > 0 && r.Header.Get("Range") == "" {
			slowCopy(w, f, piece)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, f)
	}))
}

func slowCopy(w http.ResponseWriter, f *os.File, piece int) {
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	buf := make([]byte, piece)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			http.NewResponseController(w).Flush()
			time.Sleep(50 * time.Microsecond)
		}
		if err != nil {
			return
		}
	}
}

// coldClient reads lines "n url" from stdin, pulls url n times at once to
// the end, as registry clients do (a large read buffer, bytes discarded),
// and prints the bytes received in all, or the first error.
func coldClient() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var n int
		var url string
		if _, err := fmt.Sscan(in.Text(), &n, &url); err != nil {
			fmt.Println("error", err)
			continue
		}
		var total atomic.Int64
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				resp, err := http.Get(url)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				got, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, resp.Body, make([]byte, 256<<10))
				total.Add(got)
				if err != nil || resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d, %d bytes, %v", resp.StatusCode, got, err)
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			fmt.Println("error", err)
		default:
			fmt.Println(total.Load())
		}
	}
}

// coldBlob writes size deterministic random bytes to a file once per
// machine (reused by later runs) and returns its path and digest.
func coldBlob(tb testing.TB, size int64) (string, digest.Digest) {
	tb.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("fanout-coldcpu-%d", size))
	if b, err := os.ReadFile(path + ".digest"); err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Size() == size {
			return path, digest.Digest(strings.TrimSpace(string(b)))
		}
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	h := sha256.New()
	r := io.LimitReader(rand.NewChaCha8([32]byte{52}), size)
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	dgst := digest.NewDigest(digest.SHA256, h)
	if err := os.WriteFile(path+".digest", []byte(dgst), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path, dgst
}

// helper starts this test binary as the given helper and returns its stdin
// and stdout.
func helper(tb testing.TB, role string, env ...string) (io.Writer, *bufio.Scanner) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, coldHelperEnv+"="+role)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return stdin, bufio.NewScanner(stdout)
}

func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkColdCPU measures what a cold pull of a large blob by one client
// costs the fan-out: cpu-s/GB is the CPU time (user + system) of this
// process per GB delivered, which on a shared machine moves much less than
// MB/s. The upstream (serving a file with sendfile) and the client run in
// processes of their own. FANOUT_COLD_SIZE sets the blob size (default
// 1 GiB; the blob file is kept in the temp directory for later runs),
// FANOUT_COLD_DIR the spool directory, FANOUT_COLD_PIECE a slower upstream
// (see coldUpstream).
func BenchmarkColdCPU(b *testing.B) {
	size := int64(1 << 30)
	if s := os.Getenv("FANOUT_COLD_SIZE"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	path, dgst := coldBlob(b, size)
	_, upOut := helper(b, "upstream", "FANOUT_COLD_FILE="+path)
	if !upOut.Scan() {
		b.Fatal("upstream helper did not start")
	}
	// Reads are counted: when upstream is slower than the fan-out, each
	// read returns less and costs the same hand-offs, so KiB/read explains
	// much of the spread of cpu-s/GB on a loaded machine.
	var reads atomic.Int64
	httpOpen := httpOpener("http://" + upOut.Text())
	open := func(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
		body, size, err := httpOpen(ctx, offset)
		if err != nil {
			return nil, 0, err
		}
		return countReads{body, &reads}, size, nil
	}
	clIn, clOut := helper(b, "client")

	dir := os.Getenv("FANOUT_COLD_DIR") // the spool directory; default a new one in the temp directory
	if dir == "" {
		dir = b.TempDir()
	}
	var cur *Group
	px := httptestServer(b, func(w http.ResponseWriter, r *http.Request) {
		cur.Serve(w, r, dgst, open)
	})
	// Warm the upstream's page cache and the connections.
	cur = New(Options{Dir: dir})
	pullVia(b, clIn, clOut, px.URL, 1, size)
	cur.Close()

	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var cpu, wall time.Duration
			reads.Store(0)
			for b.Loop() {
				b.StopTimer()
				cur = New(Options{Dir: dir})
				b.StartTimer()
				c0, t0 := cpuTime(b), time.Now()
				pullVia(b, clIn, clOut, px.URL, clients, size)
				cpu += cpuTime(b) - c0
				wall += time.Since(t0)
				b.StopTimer()
				cur.Close()
				b.StartTimer()
			}
			gb := float64(size) * float64(clients) * float64(b.N) / 1e9
			b.ReportMetric(cpu.Seconds()/gb, "cpu-s/GB")
			b.ReportMetric(gb*1e3/wall.Seconds(), "MB/s")
			b.ReportMetric(float64(size)*float64(b.N)/1024/float64(reads.Load()), "KiB/read")
		})
	}
}

type countReads struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countReads) Read(p []byte) (int, error) {
	c.n.Add(1)
	return c.ReadCloser.Read(p)
}

// pullVia has the client helper pull url n times at once.
func pullVia(b *testing.B, in io.Writer, out *bufio.Scanner, url string, n int, size int64) {
	fmt.Fprintln(in, n, url)
	if !out.Scan() {
		b.Fatal("client helper gone")
	}
	if got := out.Text(); got != strconv.FormatInt(int64(n)*size, 10) {
		b.Fatalf("client: %s", got)
	}
}
