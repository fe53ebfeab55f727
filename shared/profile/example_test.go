package profile_test

import (
	"fmt"

	"github.com/qflare/qflare/shared/profile"
)

// A mix of devices, assigned to ten clients in exact proportions.
func ExampleMix_Assign() {
	m, err := profile.ParseMix("phone-low:0.3,laptop:0.5,desktop:0.2")
	if err != nil {
		panic(err)
	}
	fmt.Println(m, m.Counts(10))
	count := map[string]int{}
	for _, p := range m.Assign(10, 1) {
		count[p.Name]++
	}
	fmt.Println(count)
	// Output:
	// phone-low:0.3,laptop:0.5,desktop:0.2 [3 5 2]
	// map[desktop:2 laptop:5 phone-low:3]
}

// How long one local epoch of mnist-2nn on a 600-sample slice (716 MFLOPs,
// nn.Model.TrainFLOPs) and its 797 kB model take on each device.
func ExampleProfile_Compute() {
	for _, p := range profile.All() {
		fmt.Printf("%-10s compute %5.0f ms, download %5.0f ms, upload %5.0f ms\n", p.Name,
			ms(p.Compute(7.1568e8)), ms(p.Download(796_840)), ms(p.Upload(796_840)))
	}
	// Output:
	// desktop    compute    23 ms, download    70 ms, upload   125 ms
	// laptop     compute    55 ms, download    70 ms, upload   125 ms
	// phone-high compute   108 ms, download    52 ms, upload   316 ms
	// phone-low  compute   275 ms, download   268 ms, upload  1173 ms
	// iot        compute   682 ms, download   268 ms, upload  1173 ms
}

func ms(d interface{ Seconds() float64 }) float64 { return d.Seconds() * 1000 }
