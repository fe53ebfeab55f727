//go:build !(goexperiment.simd && wasm)

package kernels

// active is the kernel that Implementation uses: without SIMD128, the scalar one.
var active = &scalarKernel

// available lists every kernel of this build, the active one first.
var available = []*kernel{&scalarKernel}
