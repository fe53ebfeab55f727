//go:build js && wasm

package kernels

import "gonum.org/v1/gonum/blas/blas32"

// init makes Implementation the blas32 implementation of every js/wasm program that
// imports this package, where gonum has no assembly.
func init() {
	blas32.Use(Implementation{})
}
