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

// ---- every other elementwise op: one case each, so each registered name has
// a lit case (tests/rules/test_coverage.py); batched types only, the rule is
// the same for all of them.
//
// RUN: stablehlo-batch-opt %s --func=float_ops --axis-size=4 --in-axes=0,none --strict | filecheck %s --check-prefix=EW-FLOAT
// RUN: stablehlo-batch-opt %s --func=complex_ops --axis-size=4 --strict | filecheck %s --check-prefix=EW-COMPLEX
// RUN: stablehlo-batch-opt %s --func=int_ops --axis-size=4 --in-axes=0,none --strict | filecheck %s --check-prefix=EW-INT
// RUN: stablehlo-batch-opt %s --func=chlo_ops --axis-size=4 --in-axes=0,none --strict | filecheck %s --check-prefix=EW-CHLO
// RUN: stablehlo-batch-opt %s --func=chlo_int_ops --axis-size=4 --in-axes=none,0 --strict | filecheck %s --check-prefix=EW-CHLO-INT
// RUN: stablehlo-batch-opt %s --func=chlo_broadcast_float --axis-size=4 --in-axes=0,none --strict | filecheck %s --check-prefix=EW-CBF
// RUN: stablehlo-batch-opt %s --func=chlo_broadcast_int --axis-size=4 --in-axes=none,0 --strict | filecheck %s --check-prefix=EW-CBI
// RUN: stablehlo-batch-opt %s --func=chlo_broadcast_select --axis-size=4 --in-axes=0,none,0 --strict | filecheck %s --check-prefix=EW-CBS

// EW-FLOAT-LABEL: func.func @float_ops
// EW-FLOAT: stablehlo.abs{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.cbrt{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.ceil{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.exponential_minus_one{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.floor{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.is_finite{{[ "].*}}tensor<4x3xi1>{{$}}
// EW-FLOAT: stablehlo.log{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.log_plus_one{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.logistic{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.round_nearest_afz{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.round_nearest_even{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.rsqrt{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.sign{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.sqrt{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.tan{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.tanh{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.atan2{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.divide{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.minimum{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.power{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.remainder{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-FLOAT: stablehlo.complex{{[ "].*}}tensor<4x3xcomplex<f32>>{{$}}
func.func @float_ops(%a0: tensor<3xf32>, %a1: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi1>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xcomplex<f32>>) {
  %r0 = "stablehlo.abs"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r1 = "stablehlo.cbrt"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r2 = "stablehlo.ceil"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r3 = "stablehlo.exponential_minus_one"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r4 = "stablehlo.floor"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r5 = "stablehlo.is_finite"(%a0) : (tensor<3xf32>) -> tensor<3xi1>
  %r6 = "stablehlo.log"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r7 = "stablehlo.log_plus_one"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r8 = "stablehlo.logistic"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r9 = "stablehlo.round_nearest_afz"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r10 = "stablehlo.round_nearest_even"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r11 = "stablehlo.rsqrt"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r12 = "stablehlo.sign"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r13 = "stablehlo.sqrt"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r14 = "stablehlo.tan"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r15 = "stablehlo.tanh"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r16 = "stablehlo.reduce_precision"(%a0) {exponent_bits = 5 : i32, mantissa_bits = 10 : i32} : (tensor<3xf32>) -> tensor<3xf32>
  %r17 = "stablehlo.atan2"(%a0, %a1) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %r18 = "stablehlo.divide"(%a0, %a1) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %r19 = "stablehlo.minimum"(%a0, %a1) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %r20 = "stablehlo.power"(%a0, %a1) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %r21 = "stablehlo.remainder"(%a0, %a1) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %r22 = "stablehlo.complex"(%a0, %a1) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xcomplex<f32>>
  return %r0, %r1, %r2, %r3, %r4, %r5, %r6, %r7, %r8, %r9, %r10, %r11, %r12, %r13, %r14, %r15, %r16, %r17, %r18, %r19, %r20, %r21, %r22 : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi1>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xcomplex<f32>>
}


// EW-COMPLEX-LABEL: func.func @complex_ops
// EW-COMPLEX: stablehlo.real{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-COMPLEX: stablehlo.imag{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-COMPLEX: chlo.conj{{[ "].*}}tensor<4x3xcomplex<f32>>{{$}}
// EW-COMPLEX: chlo._asin_acos_kernel{{[ "].*}}tensor<4x3xcomplex<f32>>{{$}}
func.func @complex_ops(%a0: tensor<3xcomplex<f32>>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xcomplex<f32>>, tensor<3xcomplex<f32>>) {
  %r0 = "stablehlo.real"(%a0) : (tensor<3xcomplex<f32>>) -> tensor<3xf32>
  %r1 = "stablehlo.imag"(%a0) : (tensor<3xcomplex<f32>>) -> tensor<3xf32>
  %r2 = "chlo.conj"(%a0) : (tensor<3xcomplex<f32>>) -> tensor<3xcomplex<f32>>
  %r3 = "chlo._asin_acos_kernel"(%a0) : (tensor<3xcomplex<f32>>) -> tensor<3xcomplex<f32>>
  return %r0, %r1, %r2, %r3 : tensor<3xf32>, tensor<3xf32>, tensor<3xcomplex<f32>>, tensor<3xcomplex<f32>>
}


// EW-INT-LABEL: func.func @int_ops
// EW-INT: stablehlo.count_leading_zeros{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-INT: stablehlo.popcnt{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-INT: stablehlo.not{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-INT: stablehlo.and{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-INT: stablehlo.or{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-INT: stablehlo.shift_left{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-INT: stablehlo.shift_right_arithmetic{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-INT: stablehlo.shift_right_logical{{[ "].*}}tensor<4x3xi32>{{$}}
func.func @int_ops(%a0: tensor<3xi32>, %a1: tensor<3xi32>) -> (tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>) {
  %r0 = "stablehlo.count_leading_zeros"(%a0) : (tensor<3xi32>) -> tensor<3xi32>
  %r1 = "stablehlo.popcnt"(%a0) : (tensor<3xi32>) -> tensor<3xi32>
  %r2 = "stablehlo.not"(%a0) : (tensor<3xi32>) -> tensor<3xi32>
  %r3 = "stablehlo.and"(%a0, %a1) : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  %r4 = "stablehlo.or"(%a0, %a1) : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  %r5 = "stablehlo.shift_left"(%a0, %a1) : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  %r6 = "stablehlo.shift_right_arithmetic"(%a0, %a1) : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  %r7 = "stablehlo.shift_right_logical"(%a0, %a1) : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  return %r0, %r1, %r2, %r3, %r4, %r5, %r6, %r7 : tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>
}


// EW-CHLO-LABEL: func.func @chlo_ops
// EW-CHLO: chlo.acos{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.acosh{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.asin{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.asinh{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.atan{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.atanh{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.bessel_i1e{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.cosh{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.sinh{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.digamma{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.erf_inv{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.erfc{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.square{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.tan{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.is_inf{{[ "].*}}tensor<4x3xi1>{{$}}
// EW-CHLO: chlo.is_neg_inf{{[ "].*}}tensor<4x3xi1>{{$}}
// EW-CHLO: chlo.is_pos_inf{{[ "].*}}tensor<4x3xi1>{{$}}
// EW-CHLO: chlo.next_after{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.polygamma{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CHLO: chlo.zeta{{[ "].*}}tensor<4x3xf32>{{$}}
func.func @chlo_ops(%a0: tensor<3xf32>, %a1: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi1>, tensor<3xi1>, tensor<3xi1>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) {
  %r0 = "chlo.acos"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r1 = "chlo.acosh"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r2 = "chlo.asin"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r3 = "chlo.asinh"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r4 = "chlo.atan"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r5 = "chlo.atanh"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r6 = "chlo.bessel_i1e"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r7 = "chlo.cosh"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r8 = "chlo.sinh"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r9 = "chlo.digamma"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r10 = "chlo.erf_inv"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r11 = "chlo.erfc"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r12 = "chlo.square"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r13 = "chlo.tan"(%a0) : (tensor<3xf32>) -> tensor<3xf32>
  %r14 = "chlo.is_inf"(%a0) : (tensor<3xf32>) -> tensor<3xi1>
  %r15 = "chlo.is_neg_inf"(%a0) : (tensor<3xf32>) -> tensor<3xi1>
  %r16 = "chlo.is_pos_inf"(%a0) : (tensor<3xf32>) -> tensor<3xi1>
  %r17 = "chlo.next_after"(%a0, %a1) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %r18 = "chlo.polygamma"(%a0, %a1) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %r19 = "chlo.zeta"(%a0, %a1) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  return %r0, %r1, %r2, %r3, %r4, %r5, %r6, %r7, %r8, %r9, %r10, %r11, %r12, %r13, %r14, %r15, %r16, %r17, %r18, %r19 : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi1>, tensor<3xi1>, tensor<3xi1>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
}


// EW-CHLO-INT-LABEL: func.func @chlo_int_ops
// EW-CHLO-INT: chlo.mulhi{{[ "].*}}tensor<4x3xi32>{{$}}
func.func @chlo_int_ops(%a0: tensor<3xi32>, %a1: tensor<3xi32>) -> (tensor<3xi32>) {
  %r0 = "chlo.mulhi"(%a0, %a1) : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  return %r0 : tensor<3xi32>
}


// EW-CBF-LABEL: func.func @chlo_broadcast_float
// EW-CBF: chlo.broadcast_atan2{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_divide{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_maximum{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_minimum{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_multiply{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_next_after{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_polygamma{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_power{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_remainder{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_subtract{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_zeta{{[ "].*}}tensor<4x3xf32>{{$}}
// EW-CBF: chlo.broadcast_complex{{[ "].*}}tensor<4x3xcomplex<f32>>{{$}}
// EW-CBF: chlo.broadcast_compare{{[ "].*}}tensor<4x3xi1>{{$}}
func.func @chlo_broadcast_float(%a0: tensor<3xf32>, %a1: tensor<f32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xcomplex<f32>>, tensor<3xi1>) {
  %r0 = "chlo.broadcast_atan2"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r1 = "chlo.broadcast_divide"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r2 = "chlo.broadcast_maximum"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r3 = "chlo.broadcast_minimum"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r4 = "chlo.broadcast_multiply"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r5 = "chlo.broadcast_next_after"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r6 = "chlo.broadcast_polygamma"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r7 = "chlo.broadcast_power"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r8 = "chlo.broadcast_remainder"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r9 = "chlo.broadcast_subtract"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r10 = "chlo.broadcast_zeta"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  %r11 = "chlo.broadcast_complex"(%a0, %a1) : (tensor<3xf32>, tensor<f32>) -> tensor<3xcomplex<f32>>
  %r12 = "chlo.broadcast_compare"(%a0, %a1) {comparison_direction = #chlo<comparison_direction LT>} : (tensor<3xf32>, tensor<f32>) -> tensor<3xi1>
  return %r0, %r1, %r2, %r3, %r4, %r5, %r6, %r7, %r8, %r9, %r10, %r11, %r12 : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xcomplex<f32>>, tensor<3xi1>
}


// EW-CBI-LABEL: func.func @chlo_broadcast_int
// EW-CBI: chlo.broadcast_and{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-CBI: chlo.broadcast_or{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-CBI: chlo.broadcast_xor{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-CBI: chlo.broadcast_shift_left{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-CBI: chlo.broadcast_shift_right_arithmetic{{[ "].*}}tensor<4x3xi32>{{$}}
// EW-CBI: chlo.broadcast_shift_right_logical{{[ "].*}}tensor<4x3xi32>{{$}}
func.func @chlo_broadcast_int(%a0: tensor<3xi32>, %a1: tensor<i32>) -> (tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>) {
  %r0 = "chlo.broadcast_and"(%a0, %a1) : (tensor<3xi32>, tensor<i32>) -> tensor<3xi32>
  %r1 = "chlo.broadcast_or"(%a0, %a1) : (tensor<3xi32>, tensor<i32>) -> tensor<3xi32>
  %r2 = "chlo.broadcast_xor"(%a0, %a1) : (tensor<3xi32>, tensor<i32>) -> tensor<3xi32>
  %r3 = "chlo.broadcast_shift_left"(%a0, %a1) : (tensor<3xi32>, tensor<i32>) -> tensor<3xi32>
  %r4 = "chlo.broadcast_shift_right_arithmetic"(%a0, %a1) : (tensor<3xi32>, tensor<i32>) -> tensor<3xi32>
  %r5 = "chlo.broadcast_shift_right_logical"(%a0, %a1) : (tensor<3xi32>, tensor<i32>) -> tensor<3xi32>
  return %r0, %r1, %r2, %r3, %r4, %r5 : tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>, tensor<3xi32>
}


// EW-CBS-LABEL: func.func @chlo_broadcast_select
// EW-CBS: chlo.broadcast_select{{[ "].*}}tensor<4x3xf32>{{$}}
func.func @chlo_broadcast_select(%a0: tensor<3xi1>, %a1: tensor<3xf32>, %a2: tensor<f32>) -> (tensor<3xf32>) {
  %r0 = "chlo.broadcast_select"(%a0, %a1, %a2) : (tensor<3xi1>, tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  return %r0 : tensor<3xf32>
}
