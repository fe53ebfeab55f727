// Command plot draws test accuracy against rounds, as an SVG, from the JSON
// lines that `qflare sim --json` prints (one line per round; other lines,
// such as the summary, are skipped).
//
//	go run ./build/learning/plot -o out.svg -title T -ymin 0.9 -target 0.99 \
//	    "CNN, IID=build/learning/cnn-iid.jsonl" ...
//
// Each argument is LABEL=FILE (split at the last "="); the series are drawn
// in order.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strings"
)

// series is one run's accuracy by round.
type series struct {
	label  string
	rounds []int
	acc    []float64
}

// Chart geometry, in SVG user units.
const (
	width, height        = 760, 420
	left, right          = 64, 20
	top, bottom          = 44, 52
	plotW, plotH         = width - left - right, height - top - bottom
	legendRow, legendPad = 18, 10
	legendW              = 330
)

var colors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

func main() {
	out := flag.String("o", "", "output SVG file (default: stdout)")
	title := flag.String("title", "Test accuracy by round", "chart title")
	ymin := flag.Float64("ymin", 0, "lowest accuracy shown (values below are clipped to it)")
	targets := flag.String("target", "", "comma-separated accuracies drawn as dashed lines, e.g. 0.97,0.99")
	flag.Parse()
	if err := run(*out, *title, *ymin, *targets, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

func run(out, title string, ymin float64, targets string, args []string) error {
	if len(args) == 0 {
		return errors.New("no LABEL=FILE arguments")
	}
	var all []series
	for _, a := range args {
		i := strings.LastIndex(a, "=") // labels may hold "=", paths do not
		if i < 0 {
			return fmt.Errorf("argument %q is not LABEL=FILE", a)
		}
		label, path := a[:i], a[i+1:]
		s, err := readSeries(label, path)
		if err != nil {
			return err
		}
		all = append(all, s)
	}
	var lines []float64
	if targets != "" {
		for _, t := range strings.Split(targets, ",") {
			var v float64
			if _, err := fmt.Sscan(t, &v); err != nil {
				return fmt.Errorf("bad -target value %q", t)
			}
			lines = append(lines, v)
		}
	}
	w := io.Writer(os.Stdout)
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return draw(w, title, ymin, lines, all)
}

// readSeries reads the round lines of one `sim --json` output.
func readSeries(label, path string) (series, error) {
	f, err := os.Open(path)
	if err != nil {
		return series{}, err
	}
	defer f.Close()
	s := series{label: label}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Round        int      `json:"round"`
			TestAccuracy *float64 `json:"test_accuracy"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Round < 1 || line.TestAccuracy == nil {
			continue
		}
		s.rounds = append(s.rounds, line.Round)
		s.acc = append(s.acc, *line.TestAccuracy)
	}
	if err := sc.Err(); err != nil {
		return series{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(s.rounds) == 0 {
		return series{}, fmt.Errorf("%s: no round lines", path)
	}
	return s, nil
}

// draw writes the chart.
func draw(w io.Writer, title string, ymin float64, targets []float64, all []series) error {
	maxRound := 2
	for _, s := range all {
		maxRound = max(maxRound, s.rounds[len(s.rounds)-1])
	}
	xmax := niceCeil(float64(maxRound))
	x := func(r float64) float64 { return left + r/xmax*plotW }
	y := func(a float64) float64 { return top + (1-(max(a, ymin)-ymin)/(1-ymin))*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Grid and tick labels.
	ystep := niceStep((1 - ymin) / 5)
	for a := math.Ceil(ymin/ystep-1e-9) * ystep; a <= 1+1e-9; a += ystep {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`+"\n", left, y(a), left+plotW, y(a))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-6, y(a), trim(a))
	}
	xstep := max(1, niceStep(xmax/8)) // rounds are whole
	for r := 0.0; r <= xmax+1e-9; r += xstep {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e0e0e0"/>`+"\n", x(r), top, x(r), top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(r), top+plotH+18, trim(r))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", left, top, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">round</text>`+"\n", left+plotW/2, height-10)
	fmt.Fprintf(&b, `<text transform="translate(16 %d) rotate(-90)" text-anchor="middle">test accuracy</text>`+"\n", top+plotH/2)
	for _, t := range targets {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#555" stroke-dasharray="6 4"/>`+"\n", left, y(t), left+plotW, y(t))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", left+plotW-4, y(t)-4, trim(t))
	}
	// Series and legend.
	for i, s := range all {
		c := colors[i%len(colors)]
		var pts []string
		for j, r := range s.rounds {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(r)), y(s.acc[j])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		if len(s.rounds) <= 40 {
			for _, p := range pts {
				xy := strings.Split(p, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`+"\n", xy[0], xy[1], c)
			}
		}
		// The legend sits in the bottom right corner, which accuracy curves
		// leave empty once they have risen.
		ly := top + plotH - legendPad - (len(all)-i)*legendRow + legendRow/2
		lx := left + plotW - legendW
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", lx, ly, lx+22, ly, c)
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", lx+28, ly, html.EscapeString(s.label))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// niceCeil rounds v up to a multiple of a nice step.
func niceCeil(v float64) float64 {
	s := niceStep(v / 8)
	return math.Ceil(v/s) * s
}

// trim formats a tick value without trailing zeros.
func trim(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" { // a tick a rounding error below zero
		return "0"
	}
	return s
}
