// Package nn is QFLARE's numeric core: layers with forward and backward
// passes, models by name, SGD, and the training and evaluation loops that run
// the same natively and in WebAssembly.
//
// # Parameters
//
// All parameters of a Model live in one flat []float32 (Model.Params), with
// named, shaped views (Model.Tensors) in a stable order. Federated-learning
// code sees one vector; export code sees named tensors. Tensor names and
// layouts follow PyTorch (Linear weight [out, in], Conv2d weight
// [out, in, kh, kw]), and Flatten emits channel-major (CHW) order, so an
// exported model loads into the equivalent torch.nn module unchanged.
//
// # Activations
//
// Activations are NHWC (channel fastest). Conv2D lowers to im2col + GEMM;
// every GEMM goes through gonum's blas32 interface, so a faster Sgemm plugged
// in with blas32.Use (see package kernels) speeds up every layer.
//
// # Determinism
//
// Initialisation uses only integer PRNG output, multiplication, division and
// square roots (all correctly rounded in IEEE 754), so a seed yields
// bit-identical weights on every platform. Training results agree across
// platforms to float32 rounding (summation order inside GEMM kernels
// differs between implementations).
//
// # Concurrency
//
// A Model's Params may be read by many goroutines (for example several
// Evaluators) while nothing writes them. A Trainer or Evaluator is not safe
// for concurrent use; make one per goroutine.
//
// # Allocation
//
// Trainer and Evaluator allocate their workspaces once; a training step or an
// evaluation batch allocates nothing in this package.
package nn
