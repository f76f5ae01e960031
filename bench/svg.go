package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
)

// Chart is a horizontal grouped bar chart: one group per measurement (e.g. "blob, 16 clients"),
// one bar per system in it (direct, trustgate, distribution proxy). Each group has its own scale,
// because the groups have different units; the value is printed at the end of each bar.
type Chart struct {
	Title  string
	Series []string // bar names, in drawing order; also the legend
	Groups []ChartGroup
}

// ChartGroup is one measurement; Values[i] belongs to Series[i] (NaN = not measured).
type ChartGroup struct {
	Label  string
	Unit   string
	Values []float64
}

var palette = []string{"#8c8c8c", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"}

// SVG renders the chart as a standalone SVG document. It is written by hand (no dependency, no
// download) and deterministic for the same input.
func (c Chart) SVG() []byte {
	const (
		width  = 760
		labelW = 230
		barH   = 16
		gap    = 3
		groupG = 14
		top    = 50
		valueW = 110
	)
	plotW := float64(width - labelW - valueW - 20)
	height := top + 20
	for range c.Groups {
		height += len(c.Series)*(barH+gap) + groupG
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", esc(c.Title))
	x := 10.0
	for i, s := range c.Series {
		fmt.Fprintf(&b, `<rect x="%.0f" y="30" width="12" height="12" fill="%s"/><text x="%.0f" y="40">%s</text>`+"\n",
			x, palette[i%len(palette)], x+16, esc(s))
		x += 16 + 7*float64(len(s)) + 20
	}
	y := top
	for _, g := range c.Groups {
		peak := 0.0
		for _, v := range g.Values {
			if !math.IsNaN(v) && v > peak {
				peak = v
			}
		}
		gh := len(c.Series) * (barH + gap)
		fmt.Fprintf(&b, `<text x="10" y="%d">%s</text>`+"\n", y+gh/2+4, esc(g.Label))
		for i := range c.Series {
			by := y + i*(barH+gap)
			v := math.NaN()
			if i < len(g.Values) {
				v = g.Values[i]
			}
			if math.IsNaN(v) {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#888">n/a</text>`+"\n", labelW, by+barH-4)
				continue
			}
			w := 0.0
			if peak > 0 {
				w = plotW * v / peak
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n",
				labelW, by, w, barH, palette[i%len(palette)])
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s %s</text>`+"\n", float64(labelW)+w+4, by+barH-4, FormatValue(v), esc(g.Unit))
		}
		y += gh + groupG
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// FormatValue prints v with about three significant digits.
func FormatValue(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
