/**
 * Project kernels registered with tf.registerKernel to fill gaps of a backend (see README.md here).
 * core/backend/select.ts calls registerProjectKernels(tf.getBackend()) after every setBackend.
 *
 * wasm (tfjs-backend-wasm 4.22):
 *   BatchMatMul, _FusedMatMul  transposed / batched / broadcast products on the XNNPACK path
 *   Identity, Cast (same dtype) share the input buffer by reference count (built-in: a full copy; every
 *                              tape entry goes through Identity)
 *   GatherV2                   block copies of contiguous runs (built-in: ~35 ns per element)
 *   Prelu                      alpha broadcast along non-trailing axes (built-in assumes trailing)
 *   UnsortedSegmentSum         missing kernel (tf.gather and Embedding gradients)
 *   Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter, DepthwiseConv2dNativeBackpropInput
 *                              missing conv gradients (conv1d/conv2d/depthwise layers train)
 *   NlSmtStableStep            fused single-token step of the 'stable' self-modifying Titans (smt-step/;
 *                              core/ops/fused-step.ts; off with NL_SMT_FUSED=off or setSmtStepEnabled(false))
 *   NlNewtonSchulz             the whole Newton-Schulz iteration per matrix in one gemm.wasm call (Muon, M3;
 *                              core/transforms/newton-schulz-kernel.ts; plugins/optimizers setFusedNewtonSchulz)
 * cpu:
 *   UnsortedSegmentSum         O(n) instead of one mask tensor per segment (same values)
 * Other backends: nothing registered.
 *
 * Registration is idempotent and reversible: each replacement config carries the config it replaced
 * (under a global symbol, so two copies of this module agree), and unregisterProjectKernels() puts
 * the originals back.
 */
import * as tf from '@tensorflow/tfjs';
import { makeBatchMatMul, makeFusedMatMul } from './batch-mat-mul';
import { makePrelu } from './prelu';
import { unsortedSegmentSumCpu, unsortedSegmentSumWasm } from './unsorted-segment-sum';
import {
  conv2DBackpropFilterWasm,
  depthwiseConv2dNativeBackpropFilterWasm,
  depthwiseConv2dNativeBackpropInputWasm,
} from './conv-grads';
import { makeSharedCast, makeSharedIdentity } from './share';
import { makeBlockGather } from './gather';
import { asWasmBackend } from './wasm-internals';
import { SMT_STABLE_STEP } from '../../ops/fused-step';
import { smtStableStepWasm, smtStepLoads, smtStepSwitch } from './smt-step/kernel';
import { NEWTON_SCHULZ_KERNEL } from '../../transforms/newton-schulz-kernel';
import { newtonSchulzEnabledFromEnv, newtonSchulzLoads, newtonSchulzWasm } from './newton-schulz';

const REPLACED: unique symbol = Symbol.for('nested-learning/project-kernel/replaced');

interface ProjectKernelConfig extends tf.KernelConfig {
  /** The built-in config this one replaced (null when the backend had none). */
  [REPLACED]: tf.KernelConfig | null;
}

interface KernelSpec {
  kernelName: string;
  /** Builds the replacement from the built-in config; specs that wrap a built-in need one. */
  build(original: tf.KernelConfig | undefined): tf.KernelConfig | null;
}

const WASM_KERNELS: readonly KernelSpec[] = [
  {
    kernelName: 'BatchMatMul',
    build: (original) =>
      original == null
        ? null
        : // Keep the built-in setupFunc: setBackend re-runs setup for registered kernels, and the
          // built-in kernelFunc we delegate to needs its C function bound.
          { kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: makeBatchMatMul(original.kernelFunc), setupFunc: original.setupFunc },
  },
  {
    kernelName: '_FusedMatMul',
    build: (original) =>
      original == null
        ? null
        : { kernelName: '_FusedMatMul', backendName: 'wasm', kernelFunc: makeFusedMatMul(original.kernelFunc), setupFunc: original.setupFunc },
  },
  {
    kernelName: 'Identity',
    build: (original) =>
      original == null ? null : { kernelName: 'Identity', backendName: 'wasm', kernelFunc: makeSharedIdentity(original.kernelFunc), setupFunc: original.setupFunc },
  },
  {
    kernelName: 'Cast',
    build: (original) =>
      original == null ? null : { kernelName: 'Cast', backendName: 'wasm', kernelFunc: makeSharedCast(original.kernelFunc), setupFunc: original.setupFunc },
  },
  {
    kernelName: 'GatherV2',
    build: (original) =>
      original == null ? null : { kernelName: 'GatherV2', backendName: 'wasm', kernelFunc: makeBlockGather(original.kernelFunc), setupFunc: original.setupFunc },
  },
  {
    kernelName: 'Prelu',
    build: (original) =>
      original == null ? null : { kernelName: 'Prelu', backendName: 'wasm', kernelFunc: makePrelu(original.kernelFunc), setupFunc: original.setupFunc },
  },
  {
    kernelName: 'UnsortedSegmentSum',
    build: () => ({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSumWasm as tf.KernelFunc }),
  },
  {
    kernelName: 'Conv2DBackpropFilter',
    build: () => ({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilterWasm as tf.KernelFunc }),
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    build: () => ({
      kernelName: 'DepthwiseConv2dNativeBackpropFilter',
      backendName: 'wasm',
      kernelFunc: depthwiseConv2dNativeBackpropFilterWasm as tf.KernelFunc,
    }),
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    build: () => ({
      kernelName: 'DepthwiseConv2dNativeBackpropInput',
      backendName: 'wasm',
      kernelFunc: depthwiseConv2dNativeBackpropInputWasm as tf.KernelFunc,
    }),
  },
  {
    // Added only when enabled and smt-step.wasm loads into this backend: library code picks the fused path
    // by the kernel's presence (core/ops/fused-step.ts fusedKernelUsable).
    kernelName: SMT_STABLE_STEP,
    build: () => {
      const instance = tf.findBackend('wasm');
      if (!smtStepSwitch.enabled || instance == null || !smtStepLoads(instance)) return null;
      return { kernelName: SMT_STABLE_STEP, backendName: 'wasm', kernelFunc: smtStableStepWasm as unknown as tf.KernelFunc };
    },
  },
  {
    // Added only when gemm.wasm loads into this backend: plugins/optimizers picks the fused Newton-Schulz by
    // the kernel's presence (core/ops/fused-step.ts fusedKernelUsable).
    kernelName: NEWTON_SCHULZ_KERNEL,
    build: () => {
      const instance = tf.findBackend('wasm');
      if (!newtonSchulzEnabledFromEnv() || instance == null || !newtonSchulzLoads(instance)) return null;
      return { kernelName: NEWTON_SCHULZ_KERNEL, backendName: 'wasm', kernelFunc: newtonSchulzWasm as unknown as tf.KernelFunc };
    },
  },
];

const CPU_KERNELS: readonly KernelSpec[] = [
  {
    // The built-in one is O(numSegments * x.size) with a tensor per segment (seconds per Embedding
    // backward); values are identical, only faster.
    kernelName: 'UnsortedSegmentSum',
    build: (original) =>
      original == null ? null : { kernelName: 'UnsortedSegmentSum', backendName: 'cpu', kernelFunc: unsortedSegmentSumCpu as tf.KernelFunc },
  },
];

function specsFor(backend: string): readonly KernelSpec[] {
  if (backend === 'wasm') return WASM_KERNELS;
  if (backend === 'cpu') return CPU_KERNELS;
  return [];
}

/** Names of the kernels registerProjectKernels installs for `backend` (without installing them). */
export function projectKernelNames(backend: string): string[] {
  return specsFor(backend)
    .map((k) => k.kernelName)
    .filter((name) => name !== SMT_STABLE_STEP || smtStepSwitch.enabled) // off: NL_SMT_FUSED=off / setSmtStepEnabled(false)
    .filter((name) => name !== NEWTON_SCHULZ_KERNEL || newtonSchulzEnabledFromEnv()); // off: NL_WASM_GEMM=off
}

function isProjectKernel(config: tf.KernelConfig | undefined): config is ProjectKernelConfig {
  return config != null && REPLACED in config;
}

/**
 * Registers the project kernels for `backend` (the name of the active backend) and returns the names
 * now in place. Idempotent; a no-op returning [] for backends other than 'wasm' and 'cpu'.
 */
export function registerProjectKernels(backend: string): string[] {
  if (backend === 'wasm') {
    if (tf.getKernel('BatchMatMul', 'wasm') == null) {
      throw new Error("registerProjectKernels('wasm'): the wasm backend's kernels are not registered (load @tensorflow/tfjs-backend-wasm first)");
    }
    const instance = tf.findBackend('wasm');
    // Fail now, not mid-training, if the backend's internals are not the ones these kernels use.
    if (instance != null) asWasmBackend(instance, 'registerProjectKernels');
  }
  const names: string[] = [];
  for (const spec of specsFor(backend)) {
    const current = tf.getKernel(spec.kernelName, backend);
    if (isProjectKernel(current)) {
      names.push(spec.kernelName);
      continue;
    }
    const replacement = spec.build(current);
    if (replacement == null) continue;
    const config: ProjectKernelConfig = { ...replacement, [REPLACED]: current ?? null };
    if (current != null) tf.unregisterKernel(spec.kernelName, backend);
    tf.registerKernel(config);
    names.push(spec.kernelName);
  }
  return names;
}

/**
 * Puts back the kernels the project kernels replaced (and removes added ones) for `backend`
 * (default 'wasm'). Returns the names restored or removed. Safe to call when nothing is registered.
 */
export function unregisterProjectKernels(backend = 'wasm'): string[] {
  const names: string[] = [];
  for (const spec of specsFor(backend)) {
    const current = tf.getKernel(spec.kernelName, backend);
    if (!isProjectKernel(current)) continue;
    tf.unregisterKernel(spec.kernelName, backend);
    const original = current[REPLACED];
    if (original != null) tf.registerKernel(original);
    names.push(spec.kernelName);
  }
  return names;
}

/** True when the project kernel `kernelName` is the one registered for `backend`. */
export function isProjectKernelRegistered(kernelName: string, backend = 'wasm'): boolean {
  return isProjectKernel(tf.getKernel(kernelName, backend));
}

/**
 * Escape hatch of the fused self-modifying-Titans step (NL_SMT_FUSED=off sets it at start-up): false
 * unregisters `NlSmtStableStep` from wasm, so the plugin runs its op path; true registers it again when the
 * project kernels are in place. Returns the previous setting.
 */
export function setSmtStepEnabled(enabled: boolean): boolean {
  const previous = smtStepSwitch.enabled;
  smtStepSwitch.enabled = enabled;
  const current = tf.getKernel(SMT_STABLE_STEP, 'wasm');
  if (!enabled && isProjectKernel(current)) tf.unregisterKernel(SMT_STABLE_STEP, 'wasm');
  if (enabled && current == null && isProjectKernel(tf.getKernel('BatchMatMul', 'wasm'))) registerProjectKernels('wasm');
  return previous;
}
