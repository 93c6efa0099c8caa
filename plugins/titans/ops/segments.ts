/**
 * Chunk driver shared by ops/chunked.ts and ops/naive.ts: counts chunks along the stream and runs a
 * per-chunk block function, either on the tape or checkpointed (recomputed in the backward pass).
 *
 * Stream chunks (Titans Eqs. 16-18; project Decision for Eq. 90): a call starts `position` = p tokens
 * into a chunk of C. Its T tokens split into a first segment of L0 = min(T, C - p) tokens (which ends
 * the chunk the stream is in; its inner gradients are taken at the carried `chunkStart` weights when
 * p > 0) and then segments of C tokens (the last possibly partial). After the call the stream is at
 * (p + T) mod C, and `chunkStart` holds the weights its current chunk takes gradients at (the final
 * weights when the call ends on a boundary). So one call == any split into calls == token streaming.
 *
 * Layout: the per-token inputs are packed as columns [q | k | v | theta | log eta | log(1 - alpha)],
 * [N, T, 3d + 3], then laid out as nc chunks of width cw (cw = C, or L0 when there is one segment),
 * each segment zero-padded at its end: rows past a segment's last real row only feed rows that are
 * dropped (the block reads the end state at the last real row), so padding is exact.
 *
 * Checkpointing (default): one tf.customGrad op over the whole call. Forward: the chunk loop runs off
 * the tape, picking chunks with tf.gather (O(chunk) on wasm, where Slice copies its whole input) and
 * keeping only the chunk-start states (nc x |state|). Backward: chunks in reverse; each is recomputed
 * under a local tape from its saved start state and differentiated against the adjoints of its outputs
 * (dL/dy of the chunk, dL/d(end weights, end momenta)); the adjoints of its start state flow to the
 * previous chunk. Peak memory is O(T) inputs + O(T/C) states + one chunk's intermediates, instead of
 * every chunk's intermediates, and no tape op touches a whole-sequence tensor once per chunk.
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../../../core/ops/stop-gradient';
import { gradientsInBackward } from '../../../core/ops/checkpoint';
import { sliceView } from '../../../core/ops/tensor-util';
import { splitAxis0, stackAxis0 } from './tf-util';
import type { TitansRecurrenceInputs, TitansRecurrenceOptions, TitansRecurrenceOutputs } from './types';

/** One chunk of per-token inputs (rows past `last` are padding). */
export interface ChunkBlock {
  q: tf.Tensor3D; // [N, cw, d]
  k: tf.Tensor3D; // [N, cw, d]
  v: tf.Tensor3D; // [N, cw, d]
  theta: tf.Tensor2D; // [N, cw]
  logEta: tf.Tensor2D; // [N, cw]
  logKeep: tf.Tensor2D; // [N, cw]
}

/**
 * Runs one chunk from weights `ws` and momenta `ms` with every inner gradient taken at `gp` (already
 * through stopGradient in 'stop' mode); `last` = last real row. Returns the reads y [N, cw, d] (padding
 * rows arbitrary) and the state after row `last`.
 */
export type BlockFn = (
  opts: TitansRecurrenceOptions,
  blk: ChunkBlock,
  ws: tf.Tensor3D[],
  ms: tf.Tensor3D[],
  gp: tf.Tensor3D[],
  last: number,
) => { y: tf.Tensor3D; weights: tf.Tensor3D[]; momenta: tf.Tensor3D[] };

/** Segment plan of one call. */
interface Plan {
  n: number;
  t: number;
  d: number;
  p: number; // position in the chunk at the call start
  l0: number; // tokens of the first segment
  rest: number; // tokens after it
  nc: number; // segments (chunks touched)
  cw: number; // chunk width of the layout
  newPos: number; // position after the call
}

function makePlan(inp: TitansRecurrenceInputs, c: number): Plan {
  const [n, t, d] = inp.q.shape;
  const p = inp.position ?? 0;
  const l0 = Math.min(t, c - p);
  const rest = t - l0;
  const nc = 1 + Math.ceil(rest / c);
  return { n, t, d, p, l0, rest, nc, cw: nc === 1 ? l0 : c, newPos: (p + t) % c };
}

const lastRow = (pl: Plan, ci: number): number => (ci === 0 ? pl.l0 : Math.min(pl.cw, pl.rest - (ci - 1) * pl.cw)) - 1;

/** Slice via core sliceView (C++ StridedSlice; wasm's Slice copies its whole input into JS first) when N > 1. */
function sv(x: tf.Tensor, begin: number[], size: number[]): tf.Tensor {
  return x.shape[0] === 1 ? x.slice(begin, size) : sliceView(x, begin, size);
}

/** [N, T, e] -> [N, nc, cw, e]: each segment zero-padded to cw at its end. */
function toChunks(pl: Plan, x: tf.Tensor3D): tf.Tensor4D {
  const e = x.shape[2];
  const parts: tf.Tensor[] = [pl.rest === 0 ? x : sv(x, [0, 0, 0], [pl.n, pl.l0, e])];
  if (pl.cw > pl.l0) parts.push(tf.zeros([pl.n, pl.cw - pl.l0, e]));
  if (pl.rest > 0) {
    parts.push(sv(x, [0, pl.l0, 0], [pl.n, pl.rest, e]));
    const endPad = (pl.nc - 1) * pl.cw - pl.rest;
    if (endPad > 0) parts.push(tf.zeros([pl.n, endPad, e]));
  }
  return (parts.length === 1 ? parts[0] : tf.concat(parts, 1)).reshape([pl.n, pl.nc, pl.cw, e]) as tf.Tensor4D;
}

/** Inverse of toChunks on [N, nc cw, e]: drops the padding rows -> [N, T, e]. */
function fromChunks(pl: Plan, y: tf.Tensor3D): tf.Tensor3D {
  const e = y.shape[2];
  if (pl.nc * pl.cw === pl.t) return y;
  if (pl.l0 === pl.cw) return sv(y, [0, 0, 0], [pl.n, pl.t, e]) as tf.Tensor3D;
  const head = sv(y, [0, 0, 0], [pl.n, pl.l0, e]);
  return (pl.rest === 0 ? head : tf.concat([head, sv(y, [0, pl.cw, 0], [pl.n, pl.rest, e])], 1)) as tf.Tensor3D;
}

/** Packed columns [N, cw, 3d + 3] -> named block inputs. */
function unpackColumns(x: tf.Tensor3D, d: number): ChunkBlock {
  const [n, cw] = x.shape;
  const cols = (start: number, size: number): tf.Tensor3D => sv(x, [0, 0, start], [n, cw, size]) as tf.Tensor3D;
  const scalar = (start: number): tf.Tensor2D => cols(start, 1).reshape([n, cw]) as tf.Tensor2D;
  return { q: cols(0, d), k: cols(d, d), v: cols(2 * d, d), theta: scalar(3 * d), logEta: scalar(3 * d + 1), logKeep: scalar(3 * d + 2) };
}

/** Chunk ci of a [N, nc, cw, e] layout as [N, cw, e], read with Gather (no whole-input copy on wasm). */
function pick(x: tf.Tensor4D, ci: number): tf.Tensor3D {
  const [n, , cw, e] = x.shape;
  return tf.gather(x, [ci], 1).reshape([n, cw, e]) as tf.Tensor3D;
}

/** Gradients of a scalar function inside a customGrad backward pass (see core/ops/checkpoint.ts). */
function gradsInBackward(f: () => tf.Scalar, xs: tf.Tensor[]): tf.Tensor[] {
  return gradientsInBackward(f, xs);
}

/** Runs the recurrence chunk by chunk with `block` (see the header). */
export function runChunks(inp: TitansRecurrenceInputs, opts: TitansRecurrenceOptions, block: BlockFn): TitansRecurrenceOutputs {
  return tf.tidy(() => {
    const pl = makePlan(inp, opts.chunkSize);
    const { n, d } = pl;
    const nm = inp.weights.length;
    const sg = <T extends tf.Tensor>(x: T): T => (opts.gradientMode === 'stop' ? stopGradient(x) : x);
    const snapIn = pl.p > 0 ? (inp.chunkStart as tf.Tensor3D[]) : null;
    // write path through stopGradient in 'stop' mode; [N, T, 3d + 3]
    const cols = tf.concat(
      [inp.q, sg(inp.k), sg(inp.v), sg(inp.theta).expandDims(2), sg(inp.logEta).expandDims(2), sg(inp.logKeep).expandDims(2)],
      2,
    ) as tf.Tensor3D;
    const runBlock = (piece: tf.Tensor3D, ws: tf.Tensor3D[], ms: tf.Tensor3D[], gp: tf.Tensor3D[], ci: number) =>
      block(opts, unpackColumns(piece, d), ws, ms, gp.map(sg), lastRow(pl, ci));

    if (opts.checkpoint === false) {
      // plain tape: every chunk's intermediates are kept for backprop
      const xc = toChunks(pl, cols);
      const pieces = (pl.nc === 1 ? [xc.reshape([n, pl.cw, -1])] : splitAxis0(xc.transpose([1, 0, 2, 3]))) as tf.Tensor3D[];
      let ws = inp.weights.slice();
      let ms = inp.momenta.slice();
      let snapOut: tf.Tensor3D[] = ws;
      const ys: tf.Tensor[] = [];
      pieces.forEach((piece, ci) => {
        const gp = ci === 0 && snapIn ? snapIn : ws;
        const r = runBlock(piece, ws, ms, gp, ci);
        if (ci === pl.nc - 1) snapOut = gp;
        ws = r.weights;
        ms = r.momenta;
        ys.push(r.y);
      });
      if (pl.newPos === 0) snapOut = ws;
      const yP = (pl.nc === 1 ? ys[0] : stackAxis0(ys).transpose([1, 0, 2, 3]).reshape([n, pl.nc * pl.cw, d])) as tf.Tensor3D;
      return { y: fromChunks(pl, yP), weights: ws, momenta: ms, chunkStart: snapOut, position: pl.newPos };
    }

    // checkpointed: one custom op; output packed as [N, T d | weights | momenta | chunkStart]
    const shapes = inp.weights.map((w) => w.shape.slice(1));
    const sizes = [pl.t * d, ...[0, 1, 2].flatMap(() => shapes.map((s) => s[0] * s[1]))];
    const flat = (x: tf.Tensor): tf.Tensor2D => x.reshape([n, -1]) as tf.Tensor2D;
    const pack = (y: tf.Tensor, ws: tf.Tensor[], ms: tf.Tensor[], snap: tf.Tensor[]): tf.Tensor2D =>
      tf.concat([y, ...ws, ...ms, ...snap].map(flat), 1) as tf.Tensor2D;
    const unpack = (v: tf.Tensor2D): { y: tf.Tensor3D; ws: tf.Tensor3D[]; ms: tf.Tensor3D[]; snap: tf.Tensor3D[] } => {
      let off = 0;
      const parts = sizes.map((sz) => {
        const part = sv(v, [0, off], [n, sz]);
        off += sz;
        return part;
      });
      const mats = (i0: number): tf.Tensor3D[] => shapes.map((s, j) => parts[i0 + j].reshape([n, ...s]) as tf.Tensor3D);
      return { y: parts[0].reshape([n, pl.t, d]) as tf.Tensor3D, ws: mats(1), ms: mats(1 + nm), snap: mats(1 + 2 * nm) };
    };

    const op = tf.customGrad(((...args: unknown[]) => {
      const save = args.pop() as (ts: tf.Tensor[]) => void;
      const ins = args as tf.Tensor[];
      const colsIn = ins[0] as tf.Tensor3D;
      const ws0 = ins.slice(1, 1 + nm) as tf.Tensor3D[];
      const ms0 = ins.slice(1 + nm, 1 + 2 * nm) as tf.Tensor3D[];
      const snap0 = snapIn ? (ins.slice(1 + 2 * nm, 1 + 3 * nm) as tf.Tensor3D[]) : null;
      const xc = toChunks(pl, colsIn); // [N, nc, cw, 3d + 3]
      let ws = ws0;
      let ms = ms0;
      let snapOut: tf.Tensor3D[] = ws;
      const starts: tf.Tensor[] = [];
      const ys: tf.Tensor[] = [];
      for (let ci = 0; ci < pl.nc; ci++) {
        starts.push(...ws, ...ms);
        const gp = ci === 0 && snap0 ? snap0 : ws;
        const r = runBlock(pick(xc, ci), ws, ms, gp, ci);
        if (ci === pl.nc - 1) snapOut = gp;
        ws = r.weights;
        ms = r.momenta;
        ys.push(r.y);
      }
      if (pl.newPos === 0) snapOut = ws;
      save([xc, ...starts, ...(snap0 ?? [])]);
      const yP = (pl.nc === 1 ? ys[0] : tf.concat(ys, 1)) as tf.Tensor3D; // [N, nc cw, d]
      const value = pack(fromChunks(pl, yP), ws, ms, snapOut);

      const gradFunc = (dv: tf.Tensor2D, saved: tf.Tensor[]): tf.Tensor[] => {
        const xcS = saved[0] as tf.Tensor4D;
        const startOf = (ci: number): tf.Tensor3D[] => saved.slice(1 + ci * 2 * nm, 1 + (ci + 1) * 2 * nm) as tf.Tensor3D[];
        const snapS = snapIn ? (saved.slice(1 + pl.nc * 2 * nm) as tf.Tensor3D[]) : null;
        const g = unpack(dv);
        // adjoints of the state after the current chunk (the end snapshot is the final weights on a boundary)
        let aW: tf.Tensor[] = pl.newPos === 0 ? g.ws.map((w, j) => w.add(g.snap[j])) : g.ws;
        let aS: tf.Tensor[] = g.ms;
        const dyC = toChunks(pl, g.y); // [N, nc, cw, d]
        const dPieces: tf.Tensor[] = new Array(pl.nc);
        let dSnapIn: tf.Tensor[] = snapIn ? snapIn.map((s) => tf.zerosLike(s)) : [];
        for (let ci = pl.nc - 1; ci >= 0; ci--) {
          const useSnap = ci === 0 && snapS !== null;
          const st = startOf(ci);
          const xs = [pick(xcS, ci), ...st, ...(useSnap ? (snapS as tf.Tensor[]) : [])];
          const dy = pick(dyC, ci);
          const adjW = aW;
          const adjS = aS;
          const grads = tf.tidy(() =>
            gradsInBackward(() => {
              const piece = xs[0] as tf.Tensor3D;
              const ws = xs.slice(1, 1 + nm) as tf.Tensor3D[];
              const ms = xs.slice(1 + nm, 1 + 2 * nm) as tf.Tensor3D[];
              const gp = useSnap ? (xs.slice(1 + 2 * nm) as tf.Tensor3D[]) : ws;
              const r = runBlock(piece, ws, ms, gp, ci);
              const terms: tf.Tensor[] = [r.y.mul(dy).sum()];
              r.weights.forEach((w, j) => terms.push(w.mul(adjW[j]).sum()));
              r.momenta.forEach((m, j) => terms.push(m.mul(adjS[j]).sum()));
              if (ci === pl.nc - 1 && pl.newPos !== 0) gp.forEach((w, j) => terms.push(w.mul(g.snap[j]).sum()));
              return tf.addN(terms) as tf.Scalar;
            }, xs),
          );
          tf.dispose([xs[0], dy]);
          if (ci < pl.nc - 1) tf.dispose([...adjW, ...adjS]);
          dPieces[ci] = grads[0];
          aW = grads.slice(1, 1 + nm);
          aS = grads.slice(1 + nm, 1 + 2 * nm);
          if (useSnap) dSnapIn = grads.slice(1 + 2 * nm);
        }
        const dCols = fromChunks(pl, (pl.nc === 1 ? dPieces[0] : tf.concat(dPieces, 1)) as tf.Tensor3D);
        return [dCols, ...aW, ...aS, ...(snapIn ? dSnapIn : [])];
      };
      return { value, gradFunc };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);

    const packed = op(cols, ...inp.weights, ...inp.momenta, ...(snapIn ?? [])) as tf.Tensor2D;
    const out = unpack(packed);
    return { y: out.y, weights: out.ws, momenta: out.ms, chunkStart: out.snap, position: pl.newPos };
  }) as unknown as TitansRecurrenceOutputs;
}
