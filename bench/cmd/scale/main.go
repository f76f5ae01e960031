// Command scale renders the scale section of `make bench`: the output of the BenchmarkScale*
// Go benchmarks (go test -bench, read from stdin or the files named) as Markdown tables with one
// column per size (tags=, repos=) and a growth column: the factor per 10× work, from the
// smallest size to the largest, (last/first)^(1/decades). A value that stays flat grows ×1.0; one
// that is linear in the work grows ×10.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// metrics lists, per benchmark, the units shown (one table each) and their caption.
var metrics = map[string][][2]string{
	"BenchmarkScaleResolution": {{"ns/op", "resolution time per operation"}},
	"BenchmarkScaleMemory":     {{"heap-MiB", "live heap"}, {"rss-MiB", "resident set after"}, {"peak-rss-MiB", "peak resident set during the cold resolution"}},
	"BenchmarkScaleRepos":      {{"heap-MiB", "live heap"}, {"KiB/repo", "heap per repository"}, {"rss-MiB", "resident set"}},
	"BenchmarkScaleWarm":       {{"req/s", "warm resolutions per second (16 goroutines per CPU)"}},
	"BenchmarkScaleWarmHTTP":   {{"req/s", "warm GET manifest by tag through the proxy handler over loopback HTTP (16 clients per CPU)"}},
	"BenchmarkScaleTagsList":   {{"ns/op", "GET tags/list"}},
}

var sizeKey = regexp.MustCompile(`^(tags|repos)=(\d+)$`)

type table struct {
	sizes []int
	rows  []string
	cells map[string]map[int]float64
}

func main() {
	flag.Parse()
	var in io.Reader = os.Stdin
	if flag.NArg() > 0 {
		var rs []io.Reader
		for _, f := range flag.Args() {
			fh, err := os.Open(f)
			if err != nil {
				log.Fatal(err)
			}
			defer fh.Close()
			rs = append(rs, fh)
		}
		in = io.MultiReader(rs...)
	}
	tables := map[string]*table{} // by benchmark + "\x00" + unit
	var order []string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkScale") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		parts := strings.Split(name, "/")
		bench, size := parts[0], -1
		var row []string
		for _, p := range parts[1:] {
			if m := sizeKey.FindStringSubmatch(p); m != nil {
				size, _ = strconv.Atoi(m[2])
				continue
			}
			row = append(row, p)
		}
		if size < 0 {
			continue
		}
		rowName := strings.Join(row, " ")
		if rowName == "" {
			rowName = "—"
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if !slices.ContainsFunc(metrics[bench], func(m [2]string) bool { return m[0] == unit }) {
				continue
			}
			key := bench + "\x00" + unit
			t, ok := tables[key]
			if !ok {
				t = &table{cells: map[string]map[int]float64{}}
				tables[key] = t
				order = append(order, key)
			}
			if !slices.Contains(t.sizes, size) {
				t.sizes = append(t.sizes, size)
			}
			if t.cells[rowName] == nil {
				t.cells[rowName] = map[int]float64{}
				t.rows = append(t.rows, rowName)
			}
			t.cells[rowName][size] = v
		}
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	for _, key := range order {
		bench, unit, _ := strings.Cut(key, "\x00")
		t := tables[key]
		slices.Sort(t.sizes)
		caption := unit
		for _, m := range metrics[bench] {
			if m[0] == unit {
				caption = m[1]
			}
		}
		kind := "tags"
		if bench == "BenchmarkScaleRepos" || strings.HasPrefix(bench, "BenchmarkScaleWarm") {
			kind = "repos"
		}
		fmt.Printf("\n%s — %s (%s)\n\n| |", strings.TrimPrefix(bench, "Benchmark"), caption, unit)
		for _, s := range t.sizes {
			fmt.Printf(" %s=%d |", kind, s)
		}
		fmt.Print(" × per 10× |\n|---|")
		for range t.sizes {
			fmt.Print("---:|")
		}
		fmt.Print("---:|\n")
		for _, r := range t.rows {
			fmt.Printf("| %s |", r)
			var first, last float64
			var fs, ls int
			for _, s := range t.sizes {
				v, ok := t.cells[r][s]
				if !ok {
					fmt.Print(" |")
					continue
				}
				if fs == 0 {
					first, fs = v, s
				}
				last, ls = v, s
				fmt.Printf(" %s |", format(unit, v))
			}
			if fs > 0 && ls > fs && first > 0 {
				g := math.Pow(last/first, 1/math.Log10(float64(ls)/float64(fs)))
				fmt.Printf(" ×%.2g |\n", g)
			} else {
				fmt.Print(" |\n")
			}
		}
	}
}

func format(unit string, v float64) string {
	if unit != "ns/op" {
		if v >= 100 {
			return strconv.FormatFloat(v, 'f', 0, 64)
		}
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f s", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.3g ms", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3g µs", v/1e3)
	}
	return fmt.Sprintf("%.3g ns", v)
}
