// Parses, but fails verification: add's result shape differs from its
// operands'. Used by ../errors.mlir.
func.func @main(%x: tensor<3xf32>) -> tensor<4xf32> {
  %0 = "stablehlo.add"(%x, %x) : (tensor<3xf32>, tensor<3xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}
