package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// targetP99Millis is the p99 latency the admission endpoints should stay under, drawn as a reference line.
const targetP99Millis = 2.0

// seriesPalette colours the endpoint series in order of first appearance; red is left out because it marks
// the target line, grey because it marks the ceiling.
var seriesPalette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"}

const (
	chartWidth       = 960
	chartTitle       = "backupguard admission latency and throughput over TLS (loopback)"
	xAxisTitle       = "concurrent keep-alive connections"
	ceilingColour    = "#555555"
	targetColour     = "#d62728"
	legendRowHeight  = 18
	legendFirstRowY  = 54
	plotHeight       = 256
	xPadding         = 22  // between the plot edges and the outermost connection counts
	charWidthPx      = 6.6 // rough width of one character of 12px sans-serif, for layout only
	legendSampleLen  = 26
	legendItemGap    = 22
	legendMaxWidthPx = chartWidth - 60
)

// chartSeries is the results of one endpoint, sorted by connections.
type chartSeries struct {
	name    string
	label   string
	colour  string
	ceiling bool
	points  []LoadResult
}

// chartPanel is one of the two plots, side by side.
type chartPanel struct {
	id, title   string
	left, right float64
	value       func(LoadResult) float64
	describe    func(float64) string
	scale       niceScale
	target      bool // draw the p99 target line
}

// writeLatencyChart draws results as an SVG image: p99 latency and requests per second against the number
// of concurrent keep-alive connections (on a base 2 logarithmic axis), one line per endpoint in order of
// first appearance, the "no-op" ceiling dashed, and the p99 target as a dashed red line. The output depends
// only on results. Results with errors are drawn like the others.
func writeLatencyChart(w io.Writer, results []LoadResult) error {
	if len(results) == 0 {
		return errors.New("no load results to chart")
	}
	var connections []int
	// The latency axis always shows the target line, a little below the top so that its label fits.
	maxP99, maxRPS := targetP99Millis*1.05, 0.0
	for _, r := range results {
		if r.Connections < 1 {
			return fmt.Errorf("load result for %q has %d connections, want at least 1", r.Endpoint, r.Connections)
		}
		if !slices.Contains(connections, r.Connections) {
			connections = append(connections, r.Connections)
		}
		maxP99 = max(maxP99, millis(r))
		maxRPS = max(maxRPS, r.RequestsPerSecond())
	}
	slices.Sort(connections)
	series := groupSeries(results)
	rows := legendRows(series)

	legendBottom := float64(legendFirstRowY + legendRowHeight*(len(rows)-1))
	panelTitleY := legendBottom + 32
	top := panelTitleY + 14
	bottom := top + plotHeight
	height := int(bottom) + 64

	panels := []chartPanel{
		{
			id: "panel-latency", title: "p99 latency (ms)", left: 70, right: 450,
			value:    millis,
			describe: func(v float64) string { return fmt.Sprintf("p99 %.2f ms", v) },
			scale:    niceScaleFor(maxP99, false),
			target:   true,
		},
		{
			id: "panel-throughput", title: "requests per second", left: 560, right: 930,
			value:    LoadResult.RequestsPerSecond,
			describe: func(v float64) string { return fmt.Sprintf("%.0f requests/s", v) },
			scale:    niceScaleFor(maxRPS, true),
		},
	}

	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12" fill="#222222">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	fmt.Fprintf(&b, `<text x="%d" y="28" text-anchor="middle" font-size="16" font-weight="bold">%s</text>`+"\n", chartWidth/2, esc(chartTitle))
	writeLegend(&b, rows)
	for _, p := range panels {
		writePanel(&b, p, series, connections, panelTitleY, top, bottom)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// millis is the p99 latency of r in milliseconds.
func millis(r LoadResult) float64 {
	return float64(r.Latency.P99.Nanoseconds()) / 1e6
}

// groupSeries splits results by endpoint, in order of first appearance, each sorted by connections.
func groupSeries(results []LoadResult) []chartSeries {
	var series []chartSeries
	index := map[string]int{}
	colours := 0
	for _, r := range results {
		i, ok := index[r.Endpoint]
		if !ok {
			s := chartSeries{name: r.Endpoint, label: r.Endpoint}
			if r.Endpoint == noopEndpoint { // the ceiling (noopEndpoint is declared in bench.go)
				s.ceiling, s.colour, s.label = true, ceilingColour, r.Endpoint+" (ceiling)"
			} else {
				s.colour = seriesPalette[colours%len(seriesPalette)]
				colours++
			}
			i = len(series)
			index[r.Endpoint] = i
			series = append(series, s)
		}
		series[i].points = append(series[i].points, r)
	}
	for i := range series {
		slices.SortStableFunc(series[i].points, func(a, b LoadResult) int { return a.Connections - b.Connections })
	}
	return series
}

// legendItemWidth is the estimated width of the legend entry of s.
func legendItemWidth(s chartSeries) float64 {
	return legendSampleLen + 6 + textWidth(s.label)
}

// textWidth estimates the width of s in 12px sans-serif.
func textWidth(s string) float64 {
	return charWidthPx * float64(len([]rune(s)))
}

// legendRows breaks the legend into rows that fit the image width.
func legendRows(series []chartSeries) [][]chartSeries {
	var rows [][]chartSeries
	width := 0.0
	for _, s := range series {
		w := legendItemWidth(s)
		if len(rows) == 0 || width+legendItemGap+w > legendMaxWidthPx {
			rows = append(rows, nil)
			width = w
		} else {
			width += legendItemGap + w
		}
		rows[len(rows)-1] = append(rows[len(rows)-1], s)
	}
	return rows
}

func writeLegend(b *strings.Builder, rows [][]chartSeries) {
	b.WriteString(`<g class="legend">` + "\n")
	for i, row := range rows {
		width := float64(-legendItemGap)
		for _, s := range row {
			width += legendItemGap + legendItemWidth(s)
		}
		x := (chartWidth - width) / 2
		y := float64(legendFirstRowY + legendRowHeight*i)
		for _, s := range row {
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>`+"\n", x, y, x+legendSampleLen, y, lineStyle(s))
			writeMarker(b, s, x+legendSampleLen/2.0, y, "")
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x+legendSampleLen+6, y+4, esc(s.label))
			x += legendItemWidth(s) + legendItemGap
		}
	}
	b.WriteString("</g>\n")
}

func lineStyle(s chartSeries) string {
	if s.ceiling {
		return fmt.Sprintf(`fill="none" stroke="%s" stroke-width="2" stroke-dasharray="6,4"`, s.colour)
	}
	return fmt.Sprintf(`fill="none" stroke="%s" stroke-width="2"`, s.colour)
}

// writeMarker draws the point marker of s at x, y, with a tooltip if title is not empty: a square for the
// ceiling, a circle otherwise.
func writeMarker(b *strings.Builder, s chartSeries, x, y float64, title string) {
	var shape string
	if s.ceiling {
		shape = fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="7.0" height="7.0" fill="%s" stroke="#ffffff" stroke-width="1"`, x-3.5, y-3.5, s.colour)
	} else {
		shape = fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="4.0" fill="%s" stroke="#ffffff" stroke-width="1"`, x, y, s.colour)
	}
	if title == "" {
		b.WriteString(shape + "/>\n")
		return
	}
	element := "circle"
	if s.ceiling {
		element = "rect"
	}
	fmt.Fprintf(b, "%s><title>%s</title></%s>\n", shape, esc(title), element)
}

func writePanel(b *strings.Builder, p chartPanel, series []chartSeries, connections []int, titleY, top, bottom float64) {
	xOf := connectionsAxis(connections, p.left, p.right)
	yOf := func(v float64) float64 { return bottom - v/p.scale.max*(bottom-top) }

	fmt.Fprintf(b, `<g class="panel" id="%s">`+"\n", p.id)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="13" font-weight="bold">%s</text>`+"\n",
		(p.left+p.right)/2, titleY, esc(p.title))

	// Horizontal gridlines with their labels.
	for i := 0; i <= p.scale.ticks; i++ {
		v := float64(i) * p.scale.step
		y := yOf(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e3e3e3" stroke-width="1"/>`+"\n", p.left, y, p.right, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", p.left-6, y+4, esc(p.scale.label(v)))
	}

	// Vertical ticks, labelled unless the label would run into the previous one.
	lastLabelRight := math.Inf(-1)
	for _, c := range connections {
		x := xOf(c)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#f0f0f0" stroke-width="1"/>`+"\n", x, top, x, bottom)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#444444" stroke-width="1"/>`+"\n", x, bottom, x, bottom+5)
		label := fmt.Sprint(c)
		half := textWidth(label) / 2
		if x-half >= lastLabelRight+4 {
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, bottom+19, label)
			lastLabelRight = x + half
		}
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (p.left+p.right)/2, bottom+42, esc(xAxisTitle))

	// Axes.
	fmt.Fprintf(b, `<path d="M%.1f %.1f V%.1f H%.1f" fill="none" stroke="#444444" stroke-width="1"/>`+"\n", p.left, top, bottom, p.right)

	if p.target {
		y := yOf(targetP99Millis)
		fmt.Fprintf(b, `<line class="target" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="8,4"/>`+"\n",
			p.left, y, p.right, y, targetColour)
	}

	for _, s := range series {
		b.WriteString(`<g class="series">` + "\n")
		fmt.Fprintf(b, "<title>%s</title>\n", esc(s.name))
		points := make([]string, len(s.points))
		for i, r := range s.points {
			points[i] = fmt.Sprintf("%.1f,%.1f", xOf(r.Connections), yOf(p.value(r)))
		}
		fmt.Fprintf(b, `<polyline points="%s" %s/>`+"\n", strings.Join(points, " "), lineStyle(s))
		for _, r := range s.points {
			v := p.value(r)
			title := fmt.Sprintf("%s, %d %s: %s, %d requests, %d errors", s.name, r.Connections, plural(r.Connections, "connection"), p.describe(v), r.Requests, r.Errors)
			writeMarker(b, s, xOf(r.Connections), yOf(v), title)
		}
		b.WriteString("</g>\n")
	}

	// The target label goes on top of the lines, at the left where latencies are usually lowest.
	if p.target {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="%s" stroke="#ffffff" stroke-width="3" paint-order="stroke">target p99 %.0f ms</text>`+"\n",
			p.left+6, yOf(targetP99Millis)-6, targetColour, targetP99Millis)
	}
	b.WriteString("</g>\n")
}

// connectionsAxis maps connection counts to x between left and right on a base 2 logarithmic scale spanning
// connections (sorted, at least one, all positive); a single count is centred.
func connectionsAxis(connections []int, left, right float64) func(int) float64 {
	lo, hi := math.Log2(float64(connections[0])), math.Log2(float64(connections[len(connections)-1]))
	if hi == lo {
		return func(int) float64 { return (left + right) / 2 }
	}
	return func(c int) float64 {
		return left + xPadding + (math.Log2(float64(c))-lo)/(hi-lo)*(right-left-2*xPadding)
	}
}

// niceScale is a linear axis from 0 to max in ticks steps of step.
type niceScale struct {
	max, step float64
	ticks     int
	decimals  int  // for labels
	kilo      bool // label in thousands ("5k") or millions ("5M")
}

// label formats the axis value v: "0", or with as many decimals as the step needs.
func (s niceScale) label(v float64) string {
	if v == 0 {
		return "0"
	}
	if !s.kilo {
		return fmt.Sprintf("%.*f", s.decimals, v)
	}
	// From 10^4 up the steps are whole thousands, from 10^7 up whole millions.
	if s.max >= 1e7 {
		return fmt.Sprintf("%.0fM", v/1e6)
	}
	return fmt.Sprintf("%.0fk", v/1e3)
}

// niceMantissas are the leading digits of the nice axis maxima.
var niceMantissas = []float64{1, 2, 2.5, 5, 10}

// niceCeil returns the smallest mantissa × 10^exponent at least v, with mantissa 1, 2, 2.5 or 5; anything not
// positive (or not a number) gives 1 × 10^0.
func niceCeil(v float64) (mantissa float64, exponent int) {
	if !(v > 0) || math.IsInf(v, 1) {
		return 1, 0
	}
	exponent = int(math.Floor(math.Log10(v)))
	for _, m := range niceMantissas {
		if scaled(m, exponent) >= v {
			if m == 10 {
				return 1, exponent + 1
			}
			return m, exponent
		}
	}
	return 1, exponent + 2 // Log10 rounded far down; not reached for finite v
}

// niceMax is the smallest of 1, 2, 2.5 or 5 × 10^k that is at least v; 1 if v is not positive.
func niceMax(v float64) float64 {
	return scaled(niceCeil(v))
}

// scaled is m × 10^e, rounded once.
func scaled(m float64, e int) float64 {
	if e >= 0 {
		return m * math.Pow(10, float64(e))
	}
	return m / math.Pow(10, float64(-e))
}

// niceScaleFor is the axis from 0 to niceMax(v) with 4 or 5 steps of 1, 2 or 5 × 10^k.
func niceScaleFor(v float64, kilo bool) niceScale {
	m, e := niceCeil(v)
	stepMantissa, stepExponent := 1.0, e
	switch m {
	case 1:
		stepMantissa, stepExponent = 2, e-1
	case 2, 2.5:
		stepMantissa, stepExponent = 5, e-1
	}
	s := niceScale{max: scaled(m, e), step: scaled(stepMantissa, stepExponent), decimals: max(0, -stepExponent)}
	s.ticks = int(math.Round(s.max / s.step))
	s.kilo = kilo && s.max >= 1e4
	return s
}

// plural is noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// esc escapes s for XML text or attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // writing to a strings.Builder does not fail
	return b.String()
}
