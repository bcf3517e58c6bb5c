package web

import (
	"fmt"
	"time"

	"github.com/trail-audit/trail/api"
)

// Chart is a stacked bar chart of events over time, laid out on the server
// and drawn as inline SVG (no script, no inline style: the page's CSP
// allows neither).
type Chart struct {
	W, H int // the SVG's viewBox
	Bars []Bar
	// Ticks are the horizontal grid lines with their counts.
	Ticks []Tick
	// Labels are the time labels under the bars.
	Labels []Label
	// PlotLeft, PlotRight, PlotBottom bound the plot area.
	PlotLeft, PlotRight, PlotBottom int
}

// Bar is one bucket: its stacked segments, bottom to top.
type Bar struct {
	X, W  float64
	Title string // what a hover or a screen reader tells
	Segs  []Seg
}

// Seg is one outcome's part of a bar.
type Seg struct {
	Y, H  float64
	Class string // o-success, o-failure, o-denied, o-error
}

// Tick is a grid line at Y for Value events.
type Tick struct {
	Y     float64
	Value string
}

// Label is a time under the bars.
type Label struct {
	X    float64
	Time time.Time
	Text string
}

// NewChart lays out the series (one bucket each) of a Stats answer.
func NewChart(series []api.StatsBucket, bucket time.Duration) Chart {
	c := Chart{W: 960, H: 240, PlotLeft: 56, PlotRight: 950, PlotBottom: 200}
	const top = 12
	if len(series) == 0 {
		return c
	}
	var peak int64
	for _, b := range series {
		peak = max(peak, b.Total)
	}
	scale := niceCeil(peak)
	plotH := float64(c.PlotBottom - top)
	y := func(n int64) float64 { return float64(c.PlotBottom) - plotH*float64(n)/float64(scale) }
	for i := 0; i <= 4; i++ {
		v := scale * int64(i) / 4
		c.Ticks = append(c.Ticks, Tick{Y: y(v), Value: FormatInt(v)})
	}
	step := float64(c.PlotRight-c.PlotLeft) / float64(len(series))
	gap := min(step*0.2, 4)
	layout := "15:04"
	if bucket >= 24*time.Hour {
		layout = "Jan 2"
	}
	every := max(1, len(series)/8)
	for i, b := range series {
		x := float64(c.PlotLeft) + float64(i)*step
		bar := Bar{X: x + gap/2, W: max(step-gap, 1)}
		bar.Title = fmt.Sprintf("%s: %s events, %s failed, %s denied, %s errors",
			b.Start.UTC().Format("2006-01-02 15:04 UTC"), FormatInt(b.Total), FormatInt(b.Failure), FormatInt(b.Denied), FormatInt(b.Error))
		base := int64(0)
		for _, s := range []struct {
			n     int64
			class string
		}{{b.Total - b.Failure - b.Denied - b.Error, "o-success"}, {b.Failure, "o-failure"}, {b.Denied, "o-denied"}, {b.Error, "o-error"}} {
			if s.n <= 0 {
				continue
			}
			bar.Segs = append(bar.Segs, Seg{Y: y(base + s.n), H: y(base) - y(base+s.n), Class: s.class})
			base += s.n
		}
		c.Bars = append(c.Bars, bar)
		if i%every == 0 {
			c.Labels = append(c.Labels, Label{X: x + step/2, Time: b.Start, Text: b.Start.UTC().Format(layout)})
		}
	}
	return c
}

// niceCeil rounds n up to 1, 2, 4, 5 or 8 times a power of ten (at least 4, so
// the four grid steps are whole numbers).
func niceCeil(n int64) int64 {
	if n <= 4 {
		return 4
	}
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 4, 5, 8} {
			if v := m * p; v >= n && v%4 == 0 {
				return v
			}
		}
	}
}
