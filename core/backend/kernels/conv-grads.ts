/**
 * Convolution gradients missing from tfjs-backend-wasm 4.22 (training a conv layer on wasm throws
 * without them):
 *   Conv2DBackpropFilter                  d/dW of tf.conv1d / tf.conv2d (NHWC)
 *   DepthwiseConv2dNativeBackpropFilter   d/dW of tf.depthwiseConv2d (e.g. the short causal
 *   DepthwiseConv2dNativeBackpropInput    d/dx     depthwise convs of Titans / HOPE, window 4)
 * Index conventions follow backend_util.computeConv2DInfo (the forward kernels use the same):
 * input row ih = oh * strideHeight + fh * dilationHeight - padTop (columns alike).
 */
import * as tf from '@tensorflow/tfjs';
import { fastProduct, matMulGeometry } from './batch-mat-mul';
import { asWasmBackend, disposeIntermediate } from './wasm-internals';

type KernelArgs = Parameters<tf.KernelFunc>[0];
type ConvAttrs = {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: [number, number] | number;
  dataFormat?: 'NHWC' | 'NCHW';
};

function requireFloat32(kernelName: string, infos: Record<string, tf.TensorInfo>): void {
  for (const [name, info] of Object.entries(infos)) {
    if (info.dtype !== 'float32') throw new Error(`${kernelName}: input ${name} must be float32, got ${info.dtype}`);
  }
}

/**
 * dW [FH, FW, Cin, Cout] = sum over (b, oh, ow) of patch(x) (x) dy: one im2col pass in JS builds the
 * patches P [B*OH*OW, FH*FW*Cin], then dW = P^T dy runs on the XNNPACK product.
 */
export function conv2DBackpropFilterWasm(args: KernelArgs): tf.TensorInfo {
  const name = 'Conv2DBackpropFilter';
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = (args.attrs ?? {}) as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
  const backend = asWasmBackend(args.backend, name);
  requireFloat32(name, { x, dy });
  const format = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat ?? 'NHWC');
  if (format !== 'channelsLast') {
    throw new Error(`${name} (wasm project kernel): dataFormat must be 'NHWC', got '${attrs.dataFormat}' (tfjs-layers always passes NHWC)`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1, // tfjs computes conv2d filter gradients for dilation 1 only
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    format,
  );
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const rows = batchSize * outHeight * outWidth; // im2col rows: one per output pixel
  const cols = filterHeight * filterWidth * inChannels; // one per filter tap and input channel
  const patches = backend.makeOutput([rows, cols], 'float32');
  try {
    const xs = backend.typedArrayFromHeap(x) as Float32Array;
    const ps = backend.typedArrayFromHeap(patches) as Float32Array;
    let r = 0;
    for (let b = 0; b < batchSize; b++) {
      for (let oh = 0; oh < outHeight; oh++) {
        for (let ow = 0; ow < outWidth; ow++, r++) {
          let p = r * cols;
          for (let fh = 0; fh < filterHeight; fh++) {
            const ih = oh * info.strideHeight + fh * info.dilationHeight - info.padInfo.top;
            for (let fw = 0; fw < filterWidth; fw++, p += inChannels) {
              const iw = ow * info.strideWidth + fw * info.dilationWidth - info.padInfo.left;
              if (ih < 0 || ih >= inHeight || iw < 0 || iw >= inWidth) {
                ps.fill(0, p, p + inChannels); // zero padding
              } else {
                const src = ((b * inHeight + ih) * inWidth + iw) * inChannels;
                ps.set(xs.subarray(src, src + inChannels), p);
              }
            }
          }
        }
      }
    }
    // dy [B, OH, OW, Cout] is [rows, Cout] in memory.
    const dy2d: tf.TensorInfo = { dataId: dy.dataId, shape: [rows, outChannels], dtype: 'float32' };
    const g = matMulGeometry([rows, cols], dy2d.shape, true, false, name);
    const dW = fastProduct(backend, patches, dy2d, true, false, g); // [cols, Cout] = [FH, FW, Cin, Cout]
    return { dataId: dW.dataId, shape: [...attrs.filterShape], dtype: 'float32' };
  } finally {
    disposeIntermediate(backend, patches);
  }
}

function depthwiseInfo(xShape: number[], filterShape: number[], attrs: ConvAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
}

/** dW [FH, FW, C, M] of a depthwise conv (channel multiplier M); float64 accumulation. */
export function depthwiseConv2dNativeBackpropFilterWasm(args: KernelArgs): tf.TensorInfo {
  const name = 'DepthwiseConv2dNativeBackpropFilter';
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = (args.attrs ?? {}) as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
  const backend = asWasmBackend(args.backend, name);
  requireFloat32(name, { x, dy });
  const info = depthwiseInfo(x.shape, attrs.filterShape, attrs);
  const { batchSize, inHeight, inWidth, inChannels: C, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const M = outChannels / C;
  const acc = new Float64Array(filterHeight * filterWidth * C * M); // [FH, FW, C, M], small
  const out = backend.makeOutput([...attrs.filterShape], 'float32');
  const xs = backend.typedArrayFromHeap(x) as Float32Array;
  const dys = backend.typedArrayFromHeap(dy) as Float32Array;
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        const dyBase = ((b * outHeight + oh) * outWidth + ow) * outChannels;
        for (let fh = 0; fh < filterHeight; fh++) {
          const ih = oh * info.strideHeight + fh * info.dilationHeight - info.padInfo.top;
          if (ih < 0 || ih >= inHeight) continue;
          for (let fw = 0; fw < filterWidth; fw++) {
            const iw = ow * info.strideWidth + fw * info.dilationWidth - info.padInfo.left;
            if (iw < 0 || iw >= inWidth) continue;
            const xBase = ((b * inHeight + ih) * inWidth + iw) * C;
            const wBase = (fh * filterWidth + fw) * C * M;
            for (let c = 0; c < C; c++) {
              const xv = xs[xBase + c];
              for (let m = 0; m < M; m++) acc[wBase + c * M + m] += xv * dys[dyBase + c * M + m];
            }
          }
        }
      }
    }
  }
  (backend.typedArrayFromHeap(out) as Float32Array).set(acc);
  return out;
}

/** dx [B, H, W, C] of a depthwise conv: each dy pixel scatters back through the filter taps. */
export function depthwiseConv2dNativeBackpropInputWasm(args: KernelArgs): tf.TensorInfo {
  const name = 'DepthwiseConv2dNativeBackpropInput';
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = (args.attrs ?? {}) as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
  const backend = asWasmBackend(args.backend, name);
  requireFloat32(name, { dy, filter });
  const info = depthwiseInfo(attrs.inputShape, filter.shape, attrs);
  const { batchSize, inHeight, inWidth, inChannels: C, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const M = outChannels / C;
  const out = backend.makeOutput([...attrs.inputShape], 'float32');
  const dxs = backend.typedArrayFromHeap(out) as Float32Array;
  const dys = backend.typedArrayFromHeap(dy) as Float32Array;
  const ws = backend.typedArrayFromHeap(filter) as Float32Array;
  dxs.fill(0);
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        const dyBase = ((b * outHeight + oh) * outWidth + ow) * outChannels;
        for (let fh = 0; fh < filterHeight; fh++) {
          const ih = oh * info.strideHeight + fh * info.dilationHeight - info.padInfo.top;
          if (ih < 0 || ih >= inHeight) continue;
          for (let fw = 0; fw < filterWidth; fw++) {
            const iw = ow * info.strideWidth + fw * info.dilationWidth - info.padInfo.left;
            if (iw < 0 || iw >= inWidth) continue;
            const xBase = ((b * inHeight + ih) * inWidth + iw) * C;
            const wBase = (fh * filterWidth + fw) * C * M;
            for (let c = 0; c < C; c++) {
              let s = 0;
              for (let m = 0; m < M; m++) s += dys[dyBase + c * M + m] * ws[wBase + c * M + m];
              dxs[xBase + c] += s;
            }
          }
        }
      }
    }
  }
  return out;
}
