package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// chartFixture is two endpoints and the ceiling at 1, 8, 32 and 128 connections, in an order that is not
// sorted by connections.
func chartFixture() []LoadResult {
	result := func(endpoint string, connections int, p99 time.Duration, rps int, errors int) LoadResult {
		return LoadResult{
			Endpoint: endpoint, Connections: connections,
			Requests: rps * 10, Errors: errors, Elapsed: 10 * time.Second,
			Latency: Latency{P50: p99 / 3, P99: p99, P999: p99 * 2, Max: p99 * 4},
		}
	}
	const pvc, job = "pvcs", "jobs"
	return []LoadResult{
		result(noopEndpoint, 1, 180*time.Microsecond, 7200, 0),
		result(pvc, 1, 420*time.Microsecond, 3900, 0),
		result(job, 1, 390*time.Microsecond, 4100, 0),
		result(noopEndpoint, 8, 310*time.Microsecond, 31000, 0),
		result(pvc, 8, 760*time.Microsecond, 17500, 0),
		result(job, 8, 700*time.Microsecond, 18200, 0),
		result(pvc, 128, 3100*time.Microsecond, 21800, 3),
		result(job, 128, 2900*time.Microsecond, 22500, 0),
		result(noopEndpoint, 128, 1600*time.Microsecond, 52000, 0),
		result(noopEndpoint, 32, 640*time.Microsecond, 46000, 0),
		result(pvc, 32, 1350*time.Microsecond, 21000, 0),
		result(job, 32, 1250*time.Microsecond, 21900, 0),
	}
}

func TestWriteLatencyChartGolden(t *testing.T) {
	var out bytes.Buffer
	if err := writeLatencyChart(&out, chartFixture()); err != nil {
		t.Fatalf("writeLatencyChart: %v", err)
	}
	golden := filepath.Join("testdata", "latency-chart.svg")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestWriteLatencyChartGolden -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("chart differs from %s (run with -update to rewrite it if the change is intended):\n%s", golden, out.String())
	}

	var again bytes.Buffer
	if err := writeLatencyChart(&again, chartFixture()); err != nil {
		t.Fatalf("writeLatencyChart again: %v", err)
	}
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Error("two renderings of the same results differ")
	}

	panels := parseChart(t, out.Bytes())
	wantSeries := []string{noopEndpoint, "pvcs", "jobs"}
	if got := slices.Sorted(maps.Keys(panels)); !slices.Equal(got, []string{"panel-latency", "panel-throughput"}) {
		t.Fatalf("panels = %q, want panel-latency and panel-throughput", got)
	}
	total := 0
	for id, series := range panels {
		if got := slices.Sorted(maps.Keys(series)); !slices.Equal(got, slices.Sorted(slices.Values(wantSeries))) {
			t.Errorf("%s: series = %q, want %q", id, got, wantSeries)
		}
		for name, s := range series {
			if s.polylines != 1 {
				t.Errorf("%s: series %q has %d polylines, want 1", id, name, s.polylines)
			}
			if s.markers != 4 {
				t.Errorf("%s: series %q has %d markers, want 4", id, name, s.markers)
			}
			total += s.polylines
		}
	}
	if total != 6 {
		t.Errorf("%d polylines in all, want 6", total)
	}
}

// seriesShape counts what a series group holds.
type seriesShape struct {
	polylines, markers int
}

// parseChart checks that svg is well-formed SVG and returns, per panel id, per series name, what was drawn.
func parseChart(t *testing.T, svg []byte) map[string]map[string]*seriesShape {
	t.Helper()
	const svgNS = "http://www.w3.org/2000/svg"
	type element struct {
		name  string
		class string
		id    string
	}
	attr := func(e xml.StartElement, name string) string {
		for _, a := range e.Attr {
			if a.Name.Local == name && a.Name.Space == "" {
				return a.Value
			}
		}
		return ""
	}

	panels := map[string]map[string]*seriesShape{}
	var stack []element
	var panel string        // id of the enclosing panel
	var series *seriesShape // the enclosing series group
	var titles int          // title elements of the enclosing series group
	var title []byte        // their text
	sawRoot := false
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Space != svgNS {
				t.Fatalf("element %s is in namespace %q, want %q", tok.Name.Local, tok.Name.Space, svgNS)
			}
			if len(stack) == 0 {
				if tok.Name.Local != "svg" || sawRoot {
					t.Fatalf("root element is %s, want a single svg", tok.Name.Local)
				}
				sawRoot = true
			}
			e := element{name: tok.Name.Local, class: attr(tok, "class"), id: attr(tok, "id")}
			parent := element{}
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			switch {
			case e.name == "g" && e.class == "panel":
				panel = e.id
				if _, ok := panels[panel]; ok || panel == "" {
					t.Fatalf("panel id %q is empty or repeated", panel)
				}
				panels[panel] = map[string]*seriesShape{}
			case e.name == "g" && e.class == "series":
				if panel == "" {
					t.Fatal("series group outside a panel")
				}
				series, titles, title = &seriesShape{}, 0, nil
			case e.name == "title" && parent.name == "g" && parent.class == "series":
				titles++
			case e.name == "polyline":
				if series == nil {
					t.Fatal("polyline outside a series group")
				}
				series.polylines++
			case (e.name == "circle" || e.name == "rect") && series != nil:
				series.markers++
			}
			stack = append(stack, e)
		case xml.CharData:
			if len(stack) >= 2 && stack[len(stack)-1].name == "title" && stack[len(stack)-2].class == "series" {
				title = append(title, tok...)
			}
		case xml.EndElement:
			e := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			switch {
			case e.name == "g" && e.class == "series":
				if titles != 1 {
					t.Fatalf("%s: series group has %d titles, want 1", panel, titles)
				}
				name := string(title)
				if _, ok := panels[panel][name]; ok {
					t.Fatalf("%s: series %q drawn twice", panel, name)
				}
				panels[panel][name] = series
				series = nil
			case e.name == "g" && e.class == "panel":
				panel = ""
			}
		}
	}
	if !sawRoot {
		t.Fatal("no svg element")
	}
	return panels
}

func TestNiceMax(t *testing.T) {
	for _, tc := range []struct {
		in, want float64
	}{
		{0, 1},
		{-3, 1},
		{math.NaN(), 1},
		{math.Inf(1), 1},
		{0.3, 0.5},
		{0.024, 0.025},
		{0.1, 0.1},
		{0.9, 1},
		{1, 1},
		{1.01, 2},
		{2, 2},
		{2.1, 2.5},
		{2.5, 2.5},
		{2.6, 5},
		{3.1, 5},
		{5, 5},
		{7, 10},
		{10, 10},
		{12, 20},
		{1000, 1000},
		{1234, 2000},
		{20001, 25000},
		{52000, 100000},
		{3e6, 5e6},
	} {
		if got := niceMax(tc.in); got != tc.want {
			t.Errorf("niceMax(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNiceScaleLabels(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		kilo bool
		want []string
	}{
		{2, false, []string{"0", "0.5", "1.0", "1.5", "2.0"}},
		{3.1, false, []string{"0", "1", "2", "3", "4", "5"}},
		{0.024, false, []string{"0", "0.005", "0.010", "0.015", "0.020", "0.025"}},
		{1, false, []string{"0", "0.2", "0.4", "0.6", "0.8", "1.0"}},
		{0, true, []string{"0", "0.2", "0.4", "0.6", "0.8", "1.0"}},
		{2500, true, []string{"0", "500", "1000", "1500", "2000", "2500"}},
		{52000, true, []string{"0", "20k", "40k", "60k", "80k", "100k"}},
		{2.2e7, true, []string{"0", "5M", "10M", "15M", "20M", "25M"}},
	} {
		s := niceScaleFor(tc.in, tc.kilo)
		var got []string
		for i := 0; i <= s.ticks; i++ {
			got = append(got, s.label(float64(i)*s.step))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("niceScaleFor(%v, %v) labels = %q, want %q", tc.in, tc.kilo, got, tc.want)
		}
	}
}

func TestWriteLatencyChartEdgeCases(t *testing.T) {
	fixture := chartFixture()
	for _, tc := range []struct {
		name    string
		results []LoadResult
		wantErr string
		// wantSeries is the number of polylines per panel.
		wantSeries int
	}{
		{name: "empty", results: nil, wantErr: "no load results to chart"},
		{name: "zero connections", results: []LoadResult{{Endpoint: "x"}}, wantErr: `load result for "x" has 0 connections, want at least 1`},
		{
			name: "single connection count",
			results: slices.DeleteFunc(slices.Clone(fixture), func(r LoadResult) bool {
				return r.Connections != 32
			}),
			wantSeries: 3,
		},
		{
			name: "missing points",
			results: slices.DeleteFunc(slices.Clone(fixture), func(r LoadResult) bool {
				return (r.Endpoint == noopEndpoint && r.Connections != 8) || (r.Endpoint == "jobs" && r.Connections == 32)
			}),
			wantSeries: 3,
		},
		{
			name:       "zero latencies and no requests",
			results:    []LoadResult{{Endpoint: "a", Connections: 1}, {Endpoint: "a", Connections: 4}, {Endpoint: "b", Connections: 4, Errors: 7}},
			wantSeries: 2,
		},
		{
			name: "escaped names, more series than colours",
			results: func() []LoadResult {
				var rs []LoadResult
				for i, name := range []string{`<a&b>`, `"q"`, "c", "d", "e", "f", "g", "h", "i", "j", noopEndpoint} {
					rs = append(rs, LoadResult{Endpoint: name, Connections: 1 << i, Requests: 100 * i, Elapsed: time.Second,
						Latency: Latency{P99: time.Duration(i) * time.Millisecond}})
				}
				return rs
			}(),
			wantSeries: 11,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := writeLatencyChart(&out, tc.results)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if out.Len() != 0 {
					t.Errorf("wrote %d bytes despite the error", out.Len())
				}
				return
			}
			if err != nil {
				t.Fatalf("writeLatencyChart: %v", err)
			}
			panels := parseChart(t, out.Bytes())
			if len(panels) != 2 {
				t.Fatalf("%d panels, want 2", len(panels))
			}
			for id, series := range panels {
				if len(series) != tc.wantSeries {
					t.Errorf("%s: %d series, want %d", id, len(series), tc.wantSeries)
				}
				for name, s := range series {
					if s.polylines != 1 {
						t.Errorf("%s: series %q has %d polylines, want 1", id, name, s.polylines)
					}
				}
			}
			if bytes.Contains(out.Bytes(), []byte("NaN")) || bytes.Contains(out.Bytes(), []byte("Inf")) {
				t.Errorf("chart has a coordinate that is not a number:\n%s", out.String())
			}
		})
	}
}

func TestConnectionsAxisCentresSingleCount(t *testing.T) {
	x := connectionsAxis([]int{32}, 100, 300)
	if got := x(32); got != 200 {
		t.Errorf("single count at x = %v, want 200", got)
	}
	x = connectionsAxis([]int{1, 8, 128}, 0, 2*xPadding+140)
	for c, want := range map[int]float64{1: xPadding, 8: xPadding + 60, 128: xPadding + 140} {
		if got := x(c); math.Abs(got-want) > 1e-9 {
			t.Errorf("x(%d) = %v, want %v", c, got, want)
		}
	}
}
