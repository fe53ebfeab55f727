package fl_test

import (
	"context"
	"fmt"

	"github.com/qflare/qflare/shared/fl"
)

// One FedAvg round: two clients, weighted by their sample counts.
func Example() {
	s, err := fl.New("fedavg", fl.Options{})
	if err != nil {
		panic(err)
	}
	global := []float32{1, 1, 1}
	agg := s.Begin(1, global)
	ctx := context.Background()
	_ = agg.Add(ctx, fl.Update{Client: "alice", Samples: 300, Delta: []float32{0.4, 0, -0.4}})
	_ = agg.Add(ctx, fl.Update{Client: "bob", Samples: 100, Delta: []float32{0, 0.8, 0.4}})
	res, err := agg.Finish(ctx, global) // in place
	fmt.Println(global, res.Used, err)
	// Output: [1.3 1.2 0.8] 2 <nil>
}

// A spec string turns on detection around a robust rule; the sign-flipped
// update is excluded with a reason.
func ExampleParse() {
	s, err := fl.Parse("median,detect")
	if err != nil {
		panic(err)
	}
	agg := s.Begin(1, []float32{0, 0, 0, 0})
	ctx := context.Background()
	deltas := [][]float32{
		{1.0, 0.9, 1.1, 1.0}, {0.9, 1.1, 1.0, 1.0}, {1.1, 1.0, 0.9, 1.0},
		{1.0, 1.0, 1.0, 1.1}, {-1.0, -1.0, -1.0, -1.0},
	}
	for i, d := range deltas {
		_ = agg.Add(ctx, fl.Update{Client: fmt.Sprint("client", i), Samples: 10, Delta: d})
	}
	res, _ := agg.Finish(ctx, make([]float32, 4))
	for _, v := range res.Verdicts {
		if v.Excluded {
			fmt.Println(v.Client, v.Reason)
		}
	}
	// Output: client4 cosine -1.00 to robust aggregate vs round median 1.00 (score 40.0 > threshold 3.5)
}
