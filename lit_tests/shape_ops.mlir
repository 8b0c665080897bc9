// Ops that move data: with the batch dim first each one shifts its dimension
// attributes by one and gets the batch size prepended to its result type.
//
// RUN: stablehlo-batch-opt %s --func=broadcast_in_dim --axis-size=4 | filecheck %s --check-prefix=BID
// RUN: stablehlo-batch-opt %s --func=reshape --axis-size=4 | filecheck %s --check-prefix=RESHAPE
// RUN: stablehlo-batch-opt %s --func=transpose --axis-size=4 | filecheck %s --check-prefix=TRANSPOSE
// RUN: stablehlo-batch-opt %s --func=slice --axis-size=4 | filecheck %s --check-prefix=SLICE
// RUN: stablehlo-batch-opt %s --func=concatenate --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=CONCAT
// RUN: stablehlo-batch-opt %s --func=pad --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=PAD
// RUN: stablehlo-batch-opt %s --func=pad --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=PADV
// RUN: stablehlo-batch-opt %s --func=pad --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=PADVU
// RUN: stablehlo-batch-opt %s --func=reverse --axis-size=4 | filecheck %s --check-prefix=REVERSE
// RUN: stablehlo-batch-opt %s --func=broadcast_sizes --axis-size=4 | filecheck %s --check-prefix=BROADCAST
// RUN: stablehlo-batch-opt %s --func=get_dimension_size --axis-size=4 --out-axes=none | filecheck %s --check-prefix=GDS

// BID-LABEL: func.func @broadcast_in_dim
// BID-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>) -> tensor<4x2x3xf32>
// BID-NEXT: stablehlo.broadcast_in_dim %[[X]], dims = [0, 2] : (tensor<4x3xf32>) -> tensor<4x2x3xf32>
// BID-NEXT: return
func.func @broadcast_in_dim(%x: tensor<3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.broadcast_in_dim %x, dims = [1] : (tensor<3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// RESHAPE-LABEL: func.func @reshape
// RESHAPE-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>) -> tensor<4x6xf32>
// RESHAPE-NEXT: stablehlo.reshape %[[X]] : (tensor<4x2x3xf32>) -> tensor<4x6xf32>
// RESHAPE-NEXT: return
func.func @reshape(%x: tensor<2x3xf32>) -> tensor<6xf32> {
  %0 = stablehlo.reshape %x : (tensor<2x3xf32>) -> tensor<6xf32>
  return %0 : tensor<6xf32>
}

// TRANSPOSE-LABEL: func.func @transpose
// TRANSPOSE-SAME: (%[[X:[^:]+]]: tensor<4x2x3x5xf32>) -> tensor<4x5x2x3xf32>
// TRANSPOSE-NEXT: stablehlo.transpose %[[X]], dims = [0, 3, 1, 2] : (tensor<4x2x3x5xf32>) -> tensor<4x5x2x3xf32>
// TRANSPOSE-NEXT: return
func.func @transpose(%x: tensor<2x3x5xf32>) -> tensor<5x2x3xf32> {
  %0 = stablehlo.transpose %x, dims = [2, 0, 1] : (tensor<2x3x5xf32>) -> tensor<5x2x3xf32>
  return %0 : tensor<5x2x3xf32>
}

// The batch dim is taken whole: [0:4] with stride 1.
// SLICE-LABEL: func.func @slice
// SLICE-SAME: (%[[X:[^:]+]]: tensor<4x6x8xf32>) -> tensor<4x2x3xf32>
// SLICE-NEXT: stablehlo.slice %[[X]] [0:4, 1:5:2, 2:8:2] : (tensor<4x6x8xf32>) -> tensor<4x2x3xf32>
// SLICE-NEXT: return
func.func @slice(%x: tensor<6x8xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.slice %x [1:5:2, 2:8:2] : (tensor<6x8xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// Operands of concatenate must all carry the batch dim: the unbatched one is
// broadcast; the batched one is not touched.
// CONCAT-LABEL: func.func @concatenate
// CONCAT-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>, %[[Y:[^:]+]]: tensor<1x3xf32>) -> tensor<4x3x3xf32>
// CONCAT-NEXT: %[[YB:[^ ]+]] = stablehlo.broadcast_in_dim %[[Y]], dims = [1, 2] : (tensor<1x3xf32>) -> tensor<4x1x3xf32>
// CONCAT-NEXT: stablehlo.concatenate %[[X]], %[[YB]], dim = 1 : (tensor<4x2x3xf32>, tensor<4x1x3xf32>) -> tensor<4x3x3xf32>
// CONCAT-NEXT: return
func.func @concatenate(%x: tensor<2x3xf32>, %y: tensor<1x3xf32>) -> tensor<3x3xf32> {
  %0 = stablehlo.concatenate %x, %y, dim = 0 : (tensor<2x3xf32>, tensor<1x3xf32>) -> tensor<3x3xf32>
  return %0 : tensor<3x3xf32>
}

// An unbatched padding value: one pad with no padding on the batch dim.
// PAD-LABEL: func.func @pad
// PAD-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>, %[[V:[^:]+]]: tensor<f32>) -> tensor<4x5x9xf32>
// PAD-NEXT: stablehlo.pad %[[X]], %[[V]], low = [0, 1, 0], high = [0, 1, 2], interior = [0, 1, 2] : (tensor<4x2x3xf32>, tensor<f32>) -> tensor<4x5x9xf32>
// PAD-NEXT: return
//
// A batched padding value (one per example): pad the data with a placeholder,
// pad an all-true mask the same way (interior positions included), and select
// each example's padding value where the mask is false.
// PADV-LABEL: func.func @pad
// PADV-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>, %[[V:[^:]+]]: tensor<4xf32>) -> tensor<4x5x9xf32>
// PADV-DAG: %[[ZERO:[^ ]+]] = stablehlo.constant dense<0.000000e+00> : tensor<f32>
// PADV-DAG: %[[DATA:[^ ]+]] = stablehlo.pad %[[X]], %[[ZERO]], low = [0, 1, 0], high = [0, 1, 2], interior = [0, 1, 2] : (tensor<4x2x3xf32>, tensor<f32>) -> tensor<4x5x9xf32>
// PADV-DAG: %[[TRUE:[^ ]+]] = stablehlo.constant dense<true> : tensor<2x3xi1>
// PADV-DAG: %[[FALSE:[^ ]+]] = stablehlo.constant dense<false> : tensor<i1>
// PADV-DAG: %[[MASK:[^ ]+]] = stablehlo.pad %[[TRUE]], %[[FALSE]], low = [1, 0], high = [1, 2], interior = [1, 2] : (tensor<2x3xi1>, tensor<i1>) -> tensor<5x9xi1>
// PADV-DAG: %[[VB:[^ ]+]] = stablehlo.broadcast_in_dim %[[V]], dims = [0] : (tensor<4xf32>) -> tensor<4x5x9xf32>
// PADV-DAG: %[[MASKB:[^ ]+]] = stablehlo.broadcast_in_dim %[[MASK]], dims = [1, 2] : (tensor<5x9xi1>) -> tensor<4x5x9xi1>
// PADV: %[[R:[^ ]+]] = stablehlo.select %[[MASKB]], %[[DATA]], %[[VB]] : tensor<4x5x9xi1>, tensor<4x5x9xf32>
// PADV-NEXT: return %[[R]] : tensor<4x5x9xf32>
//
// Only the padding value is batched: the data is padded once unbatched and
// broadcast for the select.
// PADVU-LABEL: func.func @pad
// PADVU-SAME: (%[[X:[^:]+]]: tensor<2x3xf32>, %[[V:[^:]+]]: tensor<4xf32>) -> tensor<4x5x9xf32>
// PADVU-DAG: %[[DATA:[^ ]+]] = stablehlo.pad %[[X]], %{{[^,]+}}, low = [1, 0], high = [1, 2], interior = [1, 2] : (tensor<2x3xf32>, tensor<f32>) -> tensor<5x9xf32>
// PADVU-DAG: %[[DATAB:[^ ]+]] = stablehlo.broadcast_in_dim %[[DATA]], dims = [1, 2] : (tensor<5x9xf32>) -> tensor<4x5x9xf32>
// PADVU-DAG: %[[MASK:[^ ]+]] = stablehlo.pad %{{[^,]+}}, %{{[^,]+}}, low = [1, 0], high = [1, 2], interior = [1, 2] : (tensor<2x3xi1>, tensor<i1>) -> tensor<5x9xi1>
// PADVU-DAG: %[[MASKB:[^ ]+]] = stablehlo.broadcast_in_dim %[[MASK]], dims = [1, 2] : (tensor<5x9xi1>) -> tensor<4x5x9xi1>
// PADVU-DAG: %[[VB:[^ ]+]] = stablehlo.broadcast_in_dim %[[V]], dims = [0] : (tensor<4xf32>) -> tensor<4x5x9xf32>
// PADVU: %[[R:[^ ]+]] = stablehlo.select %[[MASKB]], %[[DATAB]], %[[VB]] : tensor<4x5x9xi1>, tensor<4x5x9xf32>
// PADVU-NEXT: return %[[R]] : tensor<4x5x9xf32>
func.func @pad(%x: tensor<2x3xf32>, %v: tensor<f32>) -> tensor<5x9xf32> {
  %0 = stablehlo.pad %x, %v, low = [1, 0], high = [1, 2], interior = [1, 2] : (tensor<2x3xf32>, tensor<f32>) -> tensor<5x9xf32>
  return %0 : tensor<5x9xf32>
}

// REVERSE-LABEL: func.func @reverse
// REVERSE-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>) -> tensor<4x2x3xf32>
// REVERSE-NEXT: stablehlo.reverse %[[X]], dims = [2] : tensor<4x2x3xf32>
// REVERSE-NEXT: return
func.func @reverse(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.reverse %x, dims = [1] : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// stablehlo.broadcast prepends its new dims, which would land before the batch
// dim, so it becomes a broadcast_in_dim that keeps the batch dim first.
// BROADCAST-LABEL: func.func @broadcast_sizes
// BROADCAST-SAME: (%[[X:[^:]+]]: tensor<4x3xf32>) -> tensor<4x5x2x3xf32>
// BROADCAST-NEXT: stablehlo.broadcast_in_dim %[[X]], dims = [0, 3] : (tensor<4x3xf32>) -> tensor<4x5x2x3xf32>
// BROADCAST-NEXT: return
func.func @broadcast_sizes(%x: tensor<3xf32>) -> tensor<5x2x3xf32> {
  %0 = stablehlo.broadcast %x, sizes = [5, 2] : (tensor<3xf32>) -> tensor<5x2x3xf32>
  return %0 : tensor<5x2x3xf32>
}

// A dimension size is the same for every example: the result is unbatched,
// so out_axes none is accepted.
// GDS-LABEL: func.func @get_dimension_size
// GDS-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>) -> tensor<i32>
// GDS-NEXT: %[[N:[^ ]+]] = stablehlo.get_dimension_size %[[X]], dim = 2 : (tensor<4x2x3xf32>) -> tensor<i32>
// GDS-NEXT: return %[[N]] : tensor<i32>
func.func @get_dimension_size(%x: tensor<2x3xf32>) -> tensor<i32> {
  %0 = stablehlo.get_dimension_size %x, dim = 1 : (tensor<2x3xf32>) -> tensor<i32>
  return %0 : tensor<i32>
}
