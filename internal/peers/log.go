package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Log collects a peer's combined stdout/stderr: on disk (so a failed run can be inspected) and as
// lines in memory (so tests can count requests and wait for messages without re-reading the file).
type Log struct {
	mu      sync.Mutex
	file    io.Writer
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced whenever a line is added
	path    string
}

func newLog(file io.Writer, path string) *Log {
	return &Log{file: file, path: path, changed: make(chan struct{})}
}

// Path is the file the output is also written to.
func (l *Log) Path() string { return l.path }

// Write implements io.Writer for exec.Cmd.Stdout/Stderr.
func (l *Log) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		// A full disk must not break the peer; the in-memory copy is what tests use.
		_, _ = l.file.Write(b)
	}
	l.partial = append(l.partial, b...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if len(l.partial) == 0 {
		l.partial = nil // let the backing array go after a long line
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(b), nil
}

// Lines returns a copy of the complete lines written so far.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Len is the number of complete lines so far; pass it to Since to see only what came after.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// Since returns the lines after the first n.
func (l *Log) Since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n > len(l.lines) {
		n = len(l.lines)
	}
	return append([]string(nil), l.lines[n:]...)
}

// Tail returns the last n lines as one string, for failure messages.
func (l *Log) Tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := max(len(l.lines)-n, 0)
	s := strings.Join(l.lines[start:], "\n")
	if len(l.partial) > 0 {
		s += "\n" + string(l.partial)
	}
	return s
}

// WaitFor blocks until a line (already written or new) satisfies match, and returns it.
func (l *Log) WaitFor(ctx context.Context, match func(line string) bool) (string, error) {
	seen := 0
	for {
		l.mu.Lock()
		for ; seen < len(l.lines); seen++ {
			if match(l.lines[seen]) {
				line := l.lines[seen]
				l.mu.Unlock()
				return line, nil
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for log line in %s: %w", l.path, ctx.Err())
		}
	}
}

// jsonRecords decodes the JSON log lines whose "msg" is msg into T; other lines (plain text,
// other messages, partial writes) are skipped, since peers interleave many kinds of output.
func jsonRecords[T any](lines []string, msg string) []T {
	var out []T
	for _, line := range lines {
		var head struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &head) != nil || head.Msg != msg {
			continue
		}
		var rec T
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		out = append(out, rec)
	}
	return out
}
