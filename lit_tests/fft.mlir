// fft (passes/rules/fft.py): the transform covers the trailing
// len(length) dims and treats leading dims as batch, so a leading batch dim
// changes only the types; type and length stay.
//
// RUN: stablehlo-batch-opt %s --func=fft --axis-size=4 | filecheck %s --check-prefix=FFT
// RUN: stablehlo-batch-opt %s --func=ifft2 --axis-size=4 | filecheck %s --check-prefix=IFFT
// RUN: stablehlo-batch-opt %s --func=rfft --axis-size=4 --in-axes=1 | filecheck %s --check-prefix=RFFT
// RUN: stablehlo-batch-opt %s --func=irfft --axis-size=4 --out-axes=-1 | filecheck %s --check-prefix=IRFFT

// FFT-LABEL: func.func @fft
// FFT-SAME: (%[[X:[^:]+]]: tensor<4x3x8xcomplex<f32>>) -> tensor<4x3x8xcomplex<f32>>
// FFT-NEXT: stablehlo.fft %[[X]], type = FFT, length = [8] : (tensor<4x3x8xcomplex<f32>>) -> tensor<4x3x8xcomplex<f32>>
// FFT-NEXT: return
func.func @fft(%x: tensor<3x8xcomplex<f32>>) -> tensor<3x8xcomplex<f32>> {
  %0 = stablehlo.fft %x, type = FFT, length = [8] : (tensor<3x8xcomplex<f32>>) -> tensor<3x8xcomplex<f32>>
  return %0 : tensor<3x8xcomplex<f32>>
}

// IFFT-LABEL: func.func @ifft2
// IFFT-SAME: (%[[X:[^:]+]]: tensor<4x4x6xcomplex<f64>>)
// IFFT-NEXT: stablehlo.fft %[[X]], type = IFFT, length = [4, 6] : (tensor<4x4x6xcomplex<f64>>) -> tensor<4x4x6xcomplex<f64>>
// IFFT-NEXT: return
func.func @ifft2(%x: tensor<4x6xcomplex<f64>>) -> tensor<4x6xcomplex<f64>> {
  %0 = stablehlo.fft %x, type = IFFT, length = [4, 6] : (tensor<4x6xcomplex<f64>>) -> tensor<4x6xcomplex<f64>>
  return %0 : tensor<4x6xcomplex<f64>>
}

// The batch enters at axis 1: one transpose to the front, then the fft.
// RFFT-LABEL: func.func @rfft
// RFFT-SAME: (%[[X:[^:]+]]: tensor<2x4x8xf32>) -> tensor<4x2x5xcomplex<f32>>
// RFFT-NEXT: %[[T:[^ ]+]] = stablehlo.transpose %[[X]], dims = [1, 0, 2]
// RFFT-NEXT: stablehlo.fft %[[T]], type = RFFT, length = [8] : (tensor<4x2x8xf32>) -> tensor<4x2x5xcomplex<f32>>
// RFFT-NEXT: return
func.func @rfft(%x: tensor<2x8xf32>) -> tensor<2x5xcomplex<f32>> {
  %0 = stablehlo.fft %x, type = RFFT, length = [8] : (tensor<2x8xf32>) -> tensor<2x5xcomplex<f32>>
  return %0 : tensor<2x5xcomplex<f32>>
}

// The batch leaves at the last axis: the fft, then one transpose.
// IRFFT-LABEL: func.func @irfft
// IRFFT-SAME: (%[[X:[^:]+]]: tensor<4x3x4x5xcomplex<f32>>) -> tensor<3x4x8x4xf32>
// IRFFT-NEXT: %[[F:[^ ]+]] = stablehlo.fft %[[X]], type = IRFFT, length = [4, 8] : (tensor<4x3x4x5xcomplex<f32>>) -> tensor<4x3x4x8xf32>
// IRFFT-NEXT: stablehlo.transpose %[[F]], dims = [1, 2, 3, 0]
func.func @irfft(%x: tensor<3x4x5xcomplex<f32>>) -> tensor<3x4x8xf32> {
  %0 = stablehlo.fft %x, type = IRFFT, length = [4, 8] : (tensor<3x4x5xcomplex<f32>>) -> tensor<3x4x8xf32>
  return %0 : tensor<3x4x8xf32>
}
