//go:build js && wasm

package nn

// In the browser, gonum has no assembly and its pure-Go Sgemm is several
// times slower than ours: importing package kernels plugs its Sgemm into
// blas32 (in its init) for every wasm program that trains with nn.
import _ "github.com/qflare/qflare/shared/kernels"
