package sim

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteSVG plots the sweep: average depth (with log2 N, the target) and
// average stretch against the number of relays (log scale), default and
// random, as two panels of one SVG.
func WriteSVG(w io.Writer, sweep []SweepPoint) error {
	const (
		width, height = 760, 370
		panelW        = 300
		panelH        = 220
		top           = 50
	)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">Tree quality against relays (bench/scale simulator)</text>`+"\n", 20)
	if len(sweep) == 0 {
		b.WriteString("</svg>\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	minN, maxN := float64(sweep[0].Relays), float64(sweep[len(sweep)-1].Relays)
	xOf := func(left float64, n int) float64 {
		if maxN == minN {
			return left + panelW/2
		}
		return left + (math.Log10(float64(n))-math.Log10(minN))/(math.Log10(maxN)-math.Log10(minN))*panelW
	}
	type series struct {
		name, color, dash string
		val               func(SweepPoint) float64
	}
	panel := func(left float64, title string, ss []series) {
		ymax := 0.0
		for _, p := range sweep {
			for _, s := range ss {
				ymax = max(ymax, s.val(p))
			}
		}
		ymax = niceCeil(ymax)
		yOf := func(v float64) float64 { return top + panelH - v/ymax*panelH }
		fmt.Fprintf(&b, `<text x="%.0f" y="%d">%s</text>`+"\n", left, top-10, title)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, top, panelW, panelH)
		for i := 0; i <= 4; i++ {
			v := ymax * float64(i) / 4
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%g</text>`+"\n", left-4, yOf(v)+4, v)
		}
		for _, p := range sweep {
			fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%d</text>`+"\n", xOf(left, p.Relays), top+panelH+16, p.Relays)
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">relays</text>`+"\n", left+panelW/2, top+panelH+32)
		for k, s := range ss {
			var pts []string
			for _, p := range sweep {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(left, p.Relays), yOf(s.val(p))))
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n",
				strings.Join(pts, " "), s.color, s.dash)
			ly := top + panelH + 50 + 14*k
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n",
				left, ly-4, left+24, ly-4, s.color, s.dash)
			fmt.Fprintf(&b, `<text x="%.0f" y="%d">%s</text>`+"\n", left+30, ly, s.name)
		}
	}
	panel(60, "average depth", []series{
		{"default", "#1f77b4", "", func(p SweepPoint) float64 { return p.DefaultDepth }},
		{"random", "#d62728", "", func(p SweepPoint) float64 { return p.RandomDepth }},
		{"log2 N (target: below)", "#555", "4 3", func(p SweepPoint) float64 { return p.Log2N }},
	})
	panel(440, "average stretch", []series{
		{"default", "#1f77b4", "", func(p SweepPoint) float64 { return p.DefaultStr }},
		{"random", "#d62728", "", func(p SweepPoint) float64 { return p.RandomStr }},
		{"2 (target: below)", "#555", "4 3", func(SweepPoint) float64 { return 2 }},
	})
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
