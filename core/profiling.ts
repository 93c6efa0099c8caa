/**
 * Cheap instrumentation of the tfjs engine for benchmarks: kernel-call counts and the high-water mark
 * of live tensor bytes. Both hook instance methods of tf.engine() (tfjs 4.22 internals: runKernelFunc,
 * trackTensor, removeDataId, state.tensorInfo) while at least one probe is active and restore them when
 * the last one stops, so code that is not being measured runs untouched.
 *
 * Kernel calls: every engine.runKernelFunc with a registered kernel name (each op dispatched to the
 * backend, forward and backward; a kernel that calls another backend function directly counts once),
 * plus, separately, customGrad ops (tf.customGrad forward functions: their inner ops count as kernels).
 * Overhead: one counter increment and a map lookup per kernel call.
 */
import * as tf from '@tensorflow/tfjs';

export interface KernelCounts {
  /** Registered-kernel invocations. */
  total: number;
  /** Invocations by kernel name. */
  byKernel: Record<string, number>;
  /** tf.customGrad ops run (not included in total). */
  customOps: number;
}

export interface KernelCounter {
  /** Counts since start (or the last reset). */
  counts(): KernelCounts;
  reset(): void;
  /** Stops counting; returns the final counts. Idempotent. */
  stop(): KernelCounts;
}

interface EngineInternals {
  runKernelFunc: (params: { kernelName?: string }) => unknown;
  trackTensor: (a: tf.Tensor, backend: unknown) => void;
  removeDataId: (dataId: object, backend: unknown) => void;
  state: { tensorInfo: { has(k: object): boolean; get(k: object): { bytes: number } | undefined } };
}

function engine(): EngineInternals {
  return tf.engine() as unknown as EngineInternals;
}

interface CounterState {
  total: number;
  byKernel: Map<string, number>;
  customOps: number;
}

const counters = new Set<CounterState>();
let originalRun: EngineInternals['runKernelFunc'] | null = null;

function installRunHook(): void {
  if (originalRun) return;
  const e = engine();
  const orig = e.runKernelFunc;
  originalRun = orig;
  e.runKernelFunc = function (this: unknown, params: { kernelName?: string }): unknown {
    const name = params.kernelName;
    for (const c of counters) {
      if (name !== undefined) {
        c.total++;
        c.byKernel.set(name, (c.byKernel.get(name) ?? 0) + 1);
      } else {
        c.customOps++;
      }
    }
    return orig.call(this, params);
  };
}

function uninstallRunHook(): void {
  if (!originalRun || counters.size > 0) return;
  engine().runKernelFunc = originalRun;
  originalRun = null;
}

function snapshot(c: CounterState): KernelCounts {
  return { total: c.total, byKernel: Object.fromEntries([...c.byKernel].sort((a, b) => b[1] - a[1])), customOps: c.customOps };
}

/** Starts counting kernel invocations on tf.engine() (several counters may run at once). */
export function startKernelCounter(): KernelCounter {
  const c: CounterState = { total: 0, byKernel: new Map(), customOps: 0 };
  counters.add(c);
  installRunHook();
  let stopped = false;
  return {
    counts: () => snapshot(c),
    reset: () => {
      c.total = 0;
      c.customOps = 0;
      c.byKernel.clear();
    },
    stop: () => {
      if (!stopped) {
        stopped = true;
        counters.delete(c);
        uninstallRunHook();
      }
      return snapshot(c);
    },
  };
}

/** Runs `fn` (sync) and returns its result with the kernel calls it made. */
export function countKernels<T>(fn: () => T): { result: T; kernels: KernelCounts } {
  const k = startKernelCounter();
  try {
    const result = fn();
    return { result, kernels: k.stop() };
  } finally {
    k.stop();
  }
}

export interface PeakBytesProbe {
  /** High-water mark of live tensor-buffer bytes since start (or the last reset). */
  peak(): number;
  /** Restarts the high-water mark from the current live bytes. */
  reset(): void;
  stop(): number;
}

interface PeakState {
  live: number;
  peak: number;
}

const peaks = new Set<PeakState>();
let originalTrack: EngineInternals['trackTensor'] | null = null;
let originalRemove: EngineInternals['removeDataId'] | null = null;

function installBytesHook(): void {
  if (originalTrack) return;
  const e = engine();
  const info = e.state.tensorInfo; // a WeakMap: not enumerable, so probes start from tf.memory().numBytes
  const track = e.trackTensor;
  const remove = e.removeDataId;
  originalTrack = track;
  originalRemove = remove;
  e.trackTensor = function (this: unknown, a: tf.Tensor, backend: unknown): void {
    const seen = info.has(a.dataId);
    track.call(this, a, backend);
    if (!seen && info.has(a.dataId)) {
      const b = info.get(a.dataId)!.bytes;
      for (const p of peaks) {
        p.live += b;
        if (p.live > p.peak) p.peak = p.live;
      }
    }
  };
  e.removeDataId = function (this: unknown, dataId: object, backend: unknown): void {
    const i = info.get(dataId);
    remove.call(this, dataId, backend);
    if (i && !info.has(dataId)) for (const p of peaks) p.live -= i.bytes;
  };
}

function uninstallBytesHook(): void {
  if (!originalTrack || peaks.size > 0) return;
  const e = engine();
  e.trackTensor = originalTrack;
  e.removeDataId = originalRemove!;
  originalTrack = null;
  originalRemove = null;
}

/**
 * Starts recording the high-water mark of the bytes held by live tensor buffers: +bytes when the
 * engine tracks a new data buffer, -bytes when it removes one, from tf.memory().numBytes at the start.
 * Unlike tf.memory().numBytes, a buffer shared by views (reshape, clone) counts once.
 */
export function startPeakBytes(): PeakBytesProbe {
  const p: PeakState = { live: tf.memory().numBytes, peak: 0 };
  p.peak = p.live;
  peaks.add(p);
  installBytesHook();
  let stopped = false;
  return {
    peak: () => p.peak,
    reset: () => {
      p.peak = p.live;
    },
    stop: () => {
      if (!stopped) {
        stopped = true;
        peaks.delete(p);
        uninstallBytesHook();
      }
      return p.peak;
    },
  };
}

/** Runs `fn` (sync) while recording the high-water mark of live tensor bytes (see startPeakBytes). */
export function withPeakBytes<T>(fn: () => T): { result: T; peakBytes: number } {
  const p = startPeakBytes();
  try {
    const result = fn();
    return { result, peakBytes: p.stop() };
  } finally {
    p.stop();
  }
}
