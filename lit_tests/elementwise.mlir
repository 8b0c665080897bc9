// Elementwise ops of stablehlo and chlo, and chlo's implicitly broadcasting ops.
//
// RUN: stablehlo-batch-opt %s --func=unary --axis-size=4 | filecheck %s --check-prefix=UNARY
// RUN: stablehlo-batch-opt %s --func=binary --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=BINL
// RUN: stablehlo-batch-opt %s --func=binary --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=BINR
// RUN: stablehlo-batch-opt %s --func=binary --axis-size=4 --in-axes=0,0 | filecheck %s --check-prefix=BINB
// RUN: stablehlo-batch-opt %s --func=select --axis-size=4 --in-axes=none,0,0 | filecheck %s --check-prefix=SELU
// RUN: stablehlo-batch-opt %s --func=select --axis-size=4 --in-axes=0,0,none | filecheck %s --check-prefix=SELB
// RUN: stablehlo-batch-opt %s --func=clamp --axis-size=4 --in-axes=none,0,none | filecheck %s --check-prefix=CLAMP
// RUN: stablehlo-batch-opt %s --func=clamp --axis-size=4 --in-axes=0,0,none | filecheck %s --check-prefix=CLAMPB
// RUN: stablehlo-batch-opt %s --func=compare --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=CMP
// RUN: stablehlo-batch-opt %s --func=convert --axis-size=4 | filecheck %s --check-prefix=CONV
// RUN: stablehlo-batch-opt %s --func=chlo_unary --axis-size=4 | filecheck %s --check-prefix=CHLO
// RUN: stablehlo-batch-opt %s --func=chlo_broadcast_add --axis-size=4 --in-axes=0,none | filecheck %s --check-prefix=CBL
// RUN: stablehlo-batch-opt %s --func=chlo_broadcast_add --axis-size=4 --in-axes=none,0 | filecheck %s --check-prefix=CBR

// UNARY-LABEL: func.func @unary
// UNARY-SAME: (%{{[^:]+}}: tensor<4x2x3xf32>) -> tensor<4x2x3xf32>
// UNARY-NEXT: stablehlo.exponential %{{.*}} : tensor<4x2x3xf32>
// UNARY-NEXT: stablehlo.negate %{{.*}} : tensor<4x2x3xf32>
// UNARY-NEXT: return %{{.*}} : tensor<4x2x3xf32>
func.func @unary(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.exponential %x : tensor<2x3xf32>
  %1 = stablehlo.negate %0 : tensor<2x3xf32>
  return %1 : tensor<2x3xf32>
}

// A same-shape binary op broadcasts its unbatched side, and only that side,
// exactly once; the batched side is used as is. (The -NEXT chains below also
// rule out any other broadcast.)
// BINL-LABEL: func.func @binary
// BINL-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>, %[[W:[^:]+]]: tensor<2x3xf32>) -> tensor<4x2x3xf32>
// BINL-NEXT: %[[WB:[^ ]+]] = stablehlo.broadcast_in_dim %[[W]], dims = [1, 2] : (tensor<2x3xf32>) -> tensor<4x2x3xf32>
// BINL-NEXT: %[[R:[^ ]+]] = stablehlo.subtract %[[X]], %[[WB]] : tensor<4x2x3xf32>
// BINL-NEXT: return %[[R]] : tensor<4x2x3xf32>
//
// BINR-LABEL: func.func @binary
// BINR-SAME: (%[[X:[^:]+]]: tensor<2x3xf32>, %[[W:[^:]+]]: tensor<4x2x3xf32>) -> tensor<4x2x3xf32>
// BINR-NEXT: %[[XB:[^ ]+]] = stablehlo.broadcast_in_dim %[[X]], dims = [1, 2] : (tensor<2x3xf32>) -> tensor<4x2x3xf32>
// BINR-NEXT: %[[R:[^ ]+]] = stablehlo.subtract %[[XB]], %[[W]] : tensor<4x2x3xf32>
// BINR-NEXT: return %[[R]] : tensor<4x2x3xf32>
//
// BINB-LABEL: func.func @binary
// BINB-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>, %[[W:[^:]+]]: tensor<4x2x3xf32>) -> tensor<4x2x3xf32>
// BINB-NEXT: %[[R:[^ ]+]] = stablehlo.subtract %[[X]], %[[W]] : tensor<4x2x3xf32>
// BINB-NEXT: return %[[R]] : tensor<4x2x3xf32>
func.func @binary(%x: tensor<2x3xf32>, %w: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.subtract %x, %w : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// An unbatched scalar predicate stays a scalar: nothing is broadcast.
// SELU-LABEL: func.func @select
// SELU-SAME: (%[[P:[^:]+]]: tensor<i1>, %[[A:[^:]+]]: tensor<4x2x3xf32>, %[[B:[^:]+]]: tensor<4x2x3xf32>)
// SELU-NEXT: %[[R:[^ ]+]] = stablehlo.select %[[P]], %[[A]], %[[B]] : tensor<i1>, tensor<4x2x3xf32>
// SELU-NEXT: return %[[R]] : tensor<4x2x3xf32>
//
// A batched scalar predicate (one per example) must cover its example's
// whole tensor: it is broadcast along the batch dim only (dims = [0]).
// SELB-LABEL: func.func @select
// SELB-SAME: (%[[P:[^:]+]]: tensor<4xi1>, %[[A:[^:]+]]: tensor<4x2x3xf32>, %[[B:[^:]+]]: tensor<2x3xf32>)
// SELB-NEXT: %[[PB:[^ ]+]] = stablehlo.broadcast_in_dim %[[P]], dims = [0] : (tensor<4xi1>) -> tensor<4x2x3xi1>
// SELB-NEXT: %[[BB:[^ ]+]] = stablehlo.broadcast_in_dim %[[B]], dims = [1, 2] : (tensor<2x3xf32>) -> tensor<4x2x3xf32>
// SELB-NEXT: %[[R:[^ ]+]] = stablehlo.select %[[PB]], %[[A]], %[[BB]] : tensor<4x2x3xi1>, tensor<4x2x3xf32>
// SELB-NEXT: return %[[R]] : tensor<4x2x3xf32>
func.func @select(%p: tensor<i1>, %a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = stablehlo.select %p, %a, %b : tensor<i1>, tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// Unbatched scalar bounds stay scalars.
// CLAMP-LABEL: func.func @clamp
// CLAMP-SAME: (%[[LO:[^:]+]]: tensor<f32>, %[[X:[^:]+]]: tensor<4x2x3xf32>, %[[HI:[^:]+]]: tensor<f32>)
// CLAMP-NEXT: %[[R:[^ ]+]] = stablehlo.clamp %[[LO]], %[[X]], %[[HI]] : (tensor<f32>, tensor<4x2x3xf32>, tensor<f32>) -> tensor<4x2x3xf32>
// CLAMP-NEXT: return %[[R]] : tensor<4x2x3xf32>
//
// A batched scalar bound is broadcast with dims = [0]; the unbatched one stays a scalar.
// CLAMPB-LABEL: func.func @clamp
// CLAMPB-SAME: (%[[LO:[^:]+]]: tensor<4xf32>, %[[X:[^:]+]]: tensor<4x2x3xf32>, %[[HI:[^:]+]]: tensor<f32>)
// CLAMPB-NEXT: %[[LOB:[^ ]+]] = stablehlo.broadcast_in_dim %[[LO]], dims = [0] : (tensor<4xf32>) -> tensor<4x2x3xf32>
// CLAMPB-NEXT: %[[R:[^ ]+]] = stablehlo.clamp %[[LOB]], %[[X]], %[[HI]] : (tensor<4x2x3xf32>, tensor<4x2x3xf32>, tensor<f32>) -> tensor<4x2x3xf32>
// CLAMPB-NEXT: return %[[R]] : tensor<4x2x3xf32>
func.func @clamp(%lo: tensor<f32>, %x: tensor<2x3xf32>, %hi: tensor<f32>) -> tensor<2x3xf32> {
  %0 = stablehlo.clamp %lo, %x, %hi : (tensor<f32>, tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CMP-LABEL: func.func @compare
// CMP-SAME: (%[[X:[^:]+]]: tensor<3xf32>, %[[Y:[^:]+]]: tensor<4x3xf32>) -> tensor<4x3xi1>
// CMP-NEXT: %[[XB:[^ ]+]] = stablehlo.broadcast_in_dim %[[X]], dims = [1] : (tensor<3xf32>) -> tensor<4x3xf32>
// CMP-NEXT: %[[R:[^ ]+]] = stablehlo.compare LT, %[[XB]], %[[Y]], FLOAT : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<4x3xi1>
// CMP-NEXT: return %[[R]] : tensor<4x3xi1>
func.func @compare(%x: tensor<3xf32>, %y: tensor<3xf32>) -> tensor<3xi1> {
  %0 = stablehlo.compare LT, %x, %y, FLOAT : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xi1>
  return %0 : tensor<3xi1>
}

// convert and bitcast_convert keep their element types; a width-changing
// bitcast_convert adds or drops a trailing dim, after the batch dim.
// CONV-LABEL: func.func @convert
// CONV-SAME: (%{{[^:]+}}: tensor<4x3xf32>, %{{[^:]+}}: tensor<4x3x2xi16>)
// CONV-SAME: -> (tensor<4x3xi32>, tensor<4x3xi32>, tensor<4x3x2xi16>, tensor<4x3xf32>)
// CONV-NEXT: %[[A:[^ ]+]] = stablehlo.convert %{{.*}} : (tensor<4x3xf32>) -> tensor<4x3xi32>
// CONV-NEXT: %[[B:[^ ]+]] = stablehlo.bitcast_convert %{{.*}} : (tensor<4x3xf32>) -> tensor<4x3xi32>
// CONV-NEXT: %[[C:[^ ]+]] = stablehlo.bitcast_convert %{{.*}} : (tensor<4x3xf32>) -> tensor<4x3x2xi16>
// CONV-NEXT: %[[D:[^ ]+]] = stablehlo.bitcast_convert %{{.*}} : (tensor<4x3x2xi16>) -> tensor<4x3xf32>
// CONV-NEXT: return %[[A]], %[[B]], %[[C]], %[[D]] :
func.func @convert(%x: tensor<3xf32>, %h: tensor<3x2xi16>)
    -> (tensor<3xi32>, tensor<3xi32>, tensor<3x2xi16>, tensor<3xf32>) {
  %0 = stablehlo.convert %x : (tensor<3xf32>) -> tensor<3xi32>
  %1 = stablehlo.bitcast_convert %x : (tensor<3xf32>) -> tensor<3xi32>
  %2 = stablehlo.bitcast_convert %x : (tensor<3xf32>) -> tensor<3x2xi16>
  %3 = stablehlo.bitcast_convert %h : (tensor<3x2xi16>) -> tensor<3xf32>
  return %0, %1, %2, %3 : tensor<3xi32>, tensor<3xi32>, tensor<3x2xi16>, tensor<3xf32>
}

// CHLO-LABEL: func.func @chlo_unary
// CHLO-SAME: (%{{[^:]+}}: tensor<4x3xf32>) -> tensor<4x3xf32>
// CHLO-NEXT: chlo.erf %{{.*}} : tensor<4x3xf32> -> tensor<4x3xf32>
// CHLO-NEXT: %[[R:[^ ]+]] = chlo.lgamma %{{.*}} : tensor<4x3xf32> -> tensor<4x3xf32>
// CHLO-NEXT: return %[[R]] : tensor<4x3xf32>
func.func @chlo_unary(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = chlo.erf %x : tensor<3xf32> -> tensor<3xf32>
  %1 = chlo.lgamma %0 : tensor<3xf32> -> tensor<3xf32>
  return %1 : tensor<3xf32>
}

// chlo.broadcast_* align trailing dims. A batched operand of the result's rank
// already lines up; a batched operand of lower rank gets unit dims after its
// batch dim. The unbatched operand is never broadcast.
// CBL-LABEL: func.func @chlo_broadcast_add
// CBL-SAME: (%[[X:[^:]+]]: tensor<4x2x3xf32>, %[[Y:[^:]+]]: tensor<3xf32>) -> tensor<4x2x3xf32>
// CBL-NEXT: %[[R:[^ ]+]] = chlo.broadcast_add %[[X]], %[[Y]] : (tensor<4x2x3xf32>, tensor<3xf32>) -> tensor<4x2x3xf32>
// CBL-NEXT: return %[[R]] : tensor<4x2x3xf32>
//
// CBR-LABEL: func.func @chlo_broadcast_add
// CBR-SAME: (%[[X:[^:]+]]: tensor<2x3xf32>, %[[Y:[^:]+]]: tensor<4x3xf32>) -> tensor<4x2x3xf32>
// CBR-NEXT: %[[YR:[^ ]+]] = stablehlo.reshape %[[Y]] : (tensor<4x3xf32>) -> tensor<4x1x3xf32>
// CBR-NEXT: %[[R:[^ ]+]] = chlo.broadcast_add %[[X]], %[[YR]] : (tensor<2x3xf32>, tensor<4x1x3xf32>) -> tensor<4x2x3xf32>
// CBR-NEXT: return %[[R]] : tensor<4x2x3xf32>
func.func @chlo_broadcast_add(%x: tensor<2x3xf32>, %y: tensor<3xf32>) -> tensor<2x3xf32> {
  %0 = chlo.broadcast_add %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
