package data_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/qflare/qflare/shared/data"
)

func ExamplePartition() {
	// 40 samples: 10 of each of 4 classes, sorted by label.
	labels := make([]uint8, 40)
	for i := range labels {
		labels[i] = uint8(i / 10)
	}
	for _, scheme := range []string{"iid", "shards:2", "dirichlet:0.5"} {
		parts, err := data.Partition(labels, 4, 4, scheme, 1)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(scheme)
		for c, idx := range parts {
			counts := make([]int, 4)
			for _, i := range idx {
				counts[labels[i]]++
			}
			fmt.Printf("  client %d: %2d samples, per class %v\n", c, len(idx), counts)
		}
	}
	// Output:
	// iid
	//   client 0: 10 samples, per class [3 2 3 2]
	//   client 1: 10 samples, per class [4 1 1 4]
	//   client 2: 10 samples, per class [3 2 4 1]
	//   client 3: 10 samples, per class [0 5 2 3]
	// shards:2
	//   client 0: 10 samples, per class [5 5 0 0]
	//   client 1: 10 samples, per class [0 0 0 10]
	//   client 2: 10 samples, per class [5 0 5 0]
	//   client 3: 10 samples, per class [0 5 5 0]
	// dirichlet:0.5
	//   client 0: 17 samples, per class [2 6 6 3]
	//   client 1:  5 samples, per class [0 3 1 1]
	//   client 2: 13 samples, per class [7 0 1 5]
	//   client 3:  5 samples, per class [1 1 2 1]
}

func ExampleWriteIDX() {
	var buf bytes.Buffer
	// Two 2x3 images.
	pixels := []uint8{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}
	if err := data.WriteIDX(&buf, []int{2, 2, 3}, pixels); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("% x\n", buf.Bytes()[:16])

	dims, got, err := data.ReadIDX(&buf, 1000)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dims, got)
	// Output:
	// 00 00 08 03 00 00 00 02 00 00 00 02 00 00 00 03
	// [2 2 3] [0 1 2 3 4 5 10 11 12 13 14 15]
}

func ExampleReadIDX() {
	// An IDX label file with three labels: magic 00 00 08 01, then N = 3.
	in := []byte{0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1}
	dims, labels, err := data.ReadIDX(bytes.NewReader(in), 100)
	fmt.Println(dims, labels, err)

	// The same header, cut short.
	_, _, err = data.ReadIDX(bytes.NewReader(in[:9]), 100)
	fmt.Println(err)
	// Output:
	// [3] [7 2 1] <nil>
	// data: idx: data [3]: truncated: want 3 bytes, got 1
}

func ExampleSet_Fill() {
	s := &data.Set{Name: "tiny", H: 1, W: 2, C: 1, Classes: 2,
		Images: []uint8{0, 255, 51, 102}, Labels: []uint8{0, 1}}
	batch := make([]float32, 2*s.Dim())
	s.Fill(batch, []int{1, 0})
	fmt.Println(batch)
	// Output:
	// [0.2 0.4 0 1]
}
