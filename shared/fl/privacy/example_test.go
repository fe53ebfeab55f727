package privacy_test

import (
	"fmt"

	"github.com/qflare/qflare/shared/fl/privacy"
)

// DP-SGD on MNIST (TensorFlow Privacy's compute_dp_sgd_privacy test):
// 60000 examples, batches of 150, noise multiplier 1.3, 15 epochs.
func Example() {
	orders := privacy.DefaultOrders()
	rdp := privacy.RDP(150.0/60000, 1.3, 15*60000/150, orders)
	eps, order := privacy.Epsilon(orders, rdp, 1e-5, privacy.Improved)
	fmt.Printf("epsilon %.3f at order %v\n", eps, order)
	// Output: epsilon 0.724 at order 19
}

// User-level DP-FedAvg: 100 of 10000 users per round, z = 1.0, 500 rounds.
func ExampleRDP() {
	orders := privacy.DefaultOrders()
	rdp := privacy.RDP(100.0/10000, 1.0, 500, orders)
	eps, _ := privacy.Epsilon(orders, rdp, 1e-5, privacy.Classic)
	fmt.Printf("epsilon %.2f\n", eps)
	// Output: epsilon 2.09
}
