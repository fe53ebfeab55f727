package kernels_test

import (
	"fmt"

	"github.com/qflare/qflare/shared/kernels"
	"gonum.org/v1/gonum/blas"
)

// A dense layer's forward pass y = x·Wᵀ with W stored [out, in] row-major.
func ExampleImplementation_Sgemm() {
	x := []float32{ // batch 2, in 3
		1, 2, 3,
		4, 5, 6,
	}
	w := []float32{ // out 2, in 3
		1, 0, -1,
		0.5, 0.5, 0.5,
	}
	y := make([]float32, 2*2)
	kernels.Implementation{}.Sgemm(blas.NoTrans, blas.Trans, 2, 2, 3, 1, x, 3, w, 3, 0, y, 2)
	fmt.Println(y)
	// Output: [-2 3 -2 7.5]
}
