// Not valid MLIR: the op is unknown. Used by ../errors.mlir.
func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = stablehlo.bogus %x : tensor<3xf32>
  return %0 : tensor<3xf32>
}
