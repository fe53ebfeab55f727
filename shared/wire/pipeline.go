package wire

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Format is the value format of a pipeline: how each float is written.
type Format uint8

// Value formats. The zero value is Float32.
const (
	Float32  Format = iota // IEEE single, 4 bytes, exact
	Float16                // IEEE half, 2 bytes, round to nearest even
	BFloat16               // bfloat16, 2 bytes, round to nearest even
	Int8                   // 1 byte with a float32 scale per tensor or per row
)

var formatNames = [...]string{Float32: "float32", Float16: "float16", BFloat16: "bfloat16", Int8: "int8"}

// String returns the format's stage name, e.g. "bfloat16".
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// width returns the bytes per value.
func (f Format) width() int {
	switch f {
	case Float32:
		return 4
	case Float16, BFloat16:
		return 2
	default:
		return 1
	}
}

// DefaultZstdLevel is the level of a bare "zstd" stage.
const DefaultZstdLevel = 3

// maxPipelineLen bounds the length of a pipeline string.
const maxPipelineLen = 256

// Pipeline is a parsed codec pipeline: the stages a vector goes through on
// its way to bytes, in this order: delta, topk, value format, shuffle, zstd.
// The zero value is the plain "float32" pipeline. Build one with
// ParsePipeline; a Pipeline written by hand is checked by Validate.
type Pipeline struct {
	Delta     bool    // encode x - ref instead of x
	TopK      float64 // fraction of entries kept, in (0, 1]; 0 means no topk stage
	Format    Format  // value format
	RowScales bool    // int8 only: one scale per row instead of per tensor
	Nearest   bool    // int8 only: round to nearest instead of stochastic rounding
	Shuffle   bool    // byte-plane shuffle of the values before entropy coding
	Zstd      int     // zstd level 1..22; 0 means no zstd stage
}

// stage positions, in the order stages must appear.
const (
	posDelta = iota
	posTopK
	posFormat
	posShuffle
	posZstd
)

var posNames = [...]string{"delta", "topk", "value format", "shuffle", "zstd"}

// ParsePipeline parses a pipeline string such as "float32+zstd" or
// "delta+topk:0.01+int8:row+zstd:9": stages joined by '+', each a name with
// optional ':'-separated parameters, in the order delta, topk:F, one value
// format (float32, float16, bfloat16, int8[:row][:nearest]; float32 if
// absent), shuffle, zstd[:LEVEL].
func ParsePipeline(s string) (Pipeline, error) {
	var p Pipeline
	if s == "" {
		return p, fmt.Errorf("wire: empty pipeline")
	}
	if len(s) > maxPipelineLen {
		return p, fmt.Errorf("wire: pipeline is %d bytes long; limit %d", len(s), maxPipelineLen)
	}
	last := -1
	for stage := range strings.SplitSeq(s, "+") {
		name, params, _ := strings.Cut(stage, ":")
		pos, err := p.parseStage(name, params, stage)
		if err != nil {
			return Pipeline{}, err
		}
		if pos == last {
			return Pipeline{}, fmt.Errorf("wire: pipeline %.64q has more than one %s stage", s, posNames[pos])
		}
		if pos < last {
			return Pipeline{}, fmt.Errorf("wire: pipeline %.64q has %s after %s; order is delta, topk, value format, shuffle, zstd", s, posNames[pos], posNames[last])
		}
		last = pos
	}
	return p, nil
}

// parseStage applies one stage to p and returns its position.
func (p *Pipeline) parseStage(name, params, stage string) (int, error) {
	noParams := func(pos int) (int, error) {
		if params != "" || strings.Contains(stage, ":") {
			return 0, fmt.Errorf("wire: stage %.32q takes no parameter", stage)
		}
		return pos, nil
	}
	switch name {
	case "":
		return 0, fmt.Errorf("wire: empty stage in pipeline")
	case "delta":
		p.Delta = true
		return noParams(posDelta)
	case "topk":
		f, err := strconv.ParseFloat(params, 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 1 {
			return 0, fmt.Errorf("wire: stage %.32q: want topk:F with 0 < F <= 1", stage)
		}
		p.TopK = f
		return posTopK, nil
	case "float32", "float16", "bfloat16":
		p.Format = map[string]Format{"float32": Float32, "float16": Float16, "bfloat16": BFloat16}[name]
		return noParams(posFormat)
	case "int8":
		p.Format = Int8
		return posFormat, p.parseInt8(params, stage)
	case "shuffle":
		p.Shuffle = true
		return noParams(posShuffle)
	case "zstd":
		p.Zstd = DefaultZstdLevel
		if params == "" && !strings.Contains(stage, ":") {
			return posZstd, nil
		}
		l, err := strconv.Atoi(params)
		if err != nil || l < 1 || l > 22 {
			return 0, fmt.Errorf("wire: stage %.32q: want zstd:LEVEL with LEVEL in 1..22", stage)
		}
		p.Zstd = l
		return posZstd, nil
	}
	return 0, fmt.Errorf("wire: unknown stage %.32q", stage)
}

// parseInt8 reads the int8 options "row" and "nearest".
func (p *Pipeline) parseInt8(params, stage string) error {
	if params == "" {
		if strings.Contains(stage, ":") {
			return fmt.Errorf("wire: stage %.32q has an empty parameter", stage)
		}
		return nil
	}
	for opt := range strings.SplitSeq(params, ":") {
		var flag *bool
		switch opt {
		case "row":
			flag = &p.RowScales
		case "nearest":
			flag = &p.Nearest
		default:
			return fmt.Errorf("wire: stage %.32q: unknown int8 option %.16q; want row or nearest", stage, opt)
		}
		if *flag {
			return fmt.Errorf("wire: stage %.32q repeats option %q", stage, opt)
		}
		*flag = true
	}
	return nil
}

// String returns the canonical form of p: every stage present, the value
// format always named, options in a fixed order, a default zstd level
// written as bare "zstd". ParsePipeline(p.String()) == p for a valid p.
func (p Pipeline) String() string {
	var b strings.Builder
	if p.Delta {
		b.WriteString("delta+")
	}
	if p.TopK != 0 {
		b.WriteString("topk:")
		b.WriteString(strconv.FormatFloat(p.TopK, 'g', -1, 64))
		b.WriteByte('+')
	}
	b.WriteString(p.Format.String())
	if p.RowScales {
		b.WriteString(":row")
	}
	if p.Nearest {
		b.WriteString(":nearest")
	}
	if p.Shuffle {
		b.WriteString("+shuffle")
	}
	if p.Zstd == DefaultZstdLevel {
		b.WriteString("+zstd")
	} else if p.Zstd != 0 {
		b.WriteString("+zstd:")
		b.WriteString(strconv.Itoa(p.Zstd))
	}
	return b.String()
}

// Validate checks that p's fields are consistent: TopK in [0, 1], a known
// Format, RowScales and Nearest only with Int8, Zstd in 0..22.
func (p Pipeline) Validate() error {
	switch {
	case math.IsNaN(p.TopK) || p.TopK < 0 || p.TopK > 1:
		return fmt.Errorf("wire: pipeline topk fraction %v outside (0, 1]", p.TopK)
	case p.Format > Int8:
		return fmt.Errorf("wire: pipeline has unknown value format %d", p.Format)
	case (p.RowScales || p.Nearest) && p.Format != Int8:
		return fmt.Errorf("wire: pipeline has int8 options with format %v", p.Format)
	case p.Zstd < 0 || p.Zstd > 22:
		return fmt.Errorf("wire: pipeline zstd level %d outside 1..22", p.Zstd)
	}
	return nil
}

// keep returns how many of n entries the topk stage keeps: ceil(TopK*n),
// at least 1, or n without a topk stage. A product within a relative 1e-9
// of an integer counts as that integer, so that 0.3*10 keeps 3, not the 4
// that float64 rounding (3.0000000000000004) would give.
func (p Pipeline) keep(n int) int {
	if p.TopK == 0 {
		return n
	}
	x := p.TopK * float64(n)
	k := math.Ceil(x)
	if r := math.Round(x); math.Abs(x-r) <= 1e-9*x {
		k = r
	}
	return min(max(int(k), 1), n)
}
