/**
 * Token-by-token ground truth of the CMS in context (Eq. 71), written without the segment machinery of
 * ops/cms.ts: for every token n of the context (1-based), the chain reads the token with the current fast
 * weights, the gradient of that token's loss is added to every learning level's pending sum, and each level
 * with n % C(l) == 0 (or, at the end of a flushed piece, with a non-empty pending sum) updates
 *   W_l <- W_l - eta(l) * sum   (or W_l + eta(l) * transform_l(sum)),
 * 'nested' also updating the child initial state and restarting level l+1 from it (Eq. 72).
 * Same arguments, state layout and result as cmsInContext; slow (one backward pass per token): tests only.
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedTensors } from '../../../core';
import { accKey, childKey, cmsActivate, cmsFreshClocks, cmsHasChild, cmsInitialState, cmsLearns, cmsWeightNames, fastKey, type CmsInContextArgs, type CmsInContextResult, type CmsState } from './cms';

export function cmsInContextNaive(a: Omit<CmsInContextArgs, 'segmentLength'>): CmsInContextResult {
  const { x, targets, spec, params } = a;
  const [b, t] = x.shape;
  const k = spec.levels.length;
  const names = cmsWeightNames(spec);
  const st: Record<string, tf.Tensor> = a.state ? tf.tidy(() => Object.fromEntries(Object.entries(a.state!).map(([key, v]) => [key, v.clone()]))) : cmsInitialState(params, spec, b);
  const clocks = a.clocks ? { tokensSeen: a.clocks.tokensSeen, lastUpdateAt: [...a.clocks.lastUpdateAt], updatesFired: [...a.clocks.updatesFired] } : cmsFreshClocks(spec);
  const set = (key: string, v: tf.Tensor): void => {
    const old = st[key];
    st[key] = tf.keep(v);
    if (old && old !== v) old.dispose();
  };
  const learning = spec.levels.map((_, l) => l).filter((l) => cmsLearns(spec, l));
  const gradKeys = learning.flatMap((l) => names.map((w) => fastKey(l, w)));
  const ys: tf.Tensor[] = [];
  const ls: tf.Tensor[] = [];
  const fired: number[] = [];
  const start = clocks.tokensSeen;
  for (let i = 0; i < t; i++) {
    const n = start + i + 1;
    tf.tidy(() => {
      const xt = x.slice([0, i], [-1, 1]).reshape([b, -1]); // [B, D]
      const yt = targets.slice([0, i], [-1, 1]);
      // weight w of level l for this token: [B, ...] (fast copy) or [1, ...] broadcast (frozen level)
      const weight = (fast: NamedTensors, l: number, w: 'w1' | 'b1' | 'w2' | 'b2'): tf.Tensor | null =>
        cmsLearns(spec, l) ? (fast[fastKey(l, w)] ?? null) : params.levels[l][w] ? params.levels[l][w]!.expandDims(0) : null;
      const blockAt = (h: tf.Tensor, fast: NamedTensors, l: number): tf.Tensor => {
        const w1 = weight(fast, l, 'w1')!;
        const w2 = weight(fast, l, 'w2')!;
        let z = tf.sum(h.expandDims(2).mul(w1), 1); // [B, H]: sum_d h_d W1[d, :]
        const b1 = weight(fast, l, 'b1');
        if (b1) z = z.add(b1);
        let o = tf.sum(cmsActivate(z, spec.activation).expandDims(2).mul(w2), 1); // [B, D]
        const b2 = weight(fast, l, 'b2');
        if (b2) o = o.add(b2);
        return o;
      };
      let y: tf.Tensor | null = null;
      let lt: tf.Tensor | null = null;
      const f = (...fast: tf.Tensor[]): tf.Scalar => {
        const fw: NamedTensors = {};
        gradKeys.forEach((key, j) => (fw[key] = fast[j]));
        let h: tf.Tensor;
        if (spec.variant === 'independent') {
          h = spec.residual ? xt : tf.zerosLike(xt);
          for (let l = 0; l < k; l++) h = h.add(blockAt(xt, fw, l).mul(params.mix!.slice([l], [1])));
        } else {
          h = xt;
          for (let l = 0; l < k; l++) h = spec.residual ? h.add(blockAt(h, fw, l)) : blockAt(h, fw, l);
        }
        y = tf.keep(h.expandDims(1)); // [B, 1, D]
        lt = tf.keep(a.loss(y, yt)); // [B, 1]
        return lt.sum() as tf.Scalar;
      };
      const gs = gradKeys.length ? tf.grads(f)(gradKeys.map((key) => st[key])) : (f(), []);
      ys.push(y!);
      ls.push(lt!);
      gradKeys.forEach((key, j) => set(accKey(key), st[accKey(key)].add(gs[j])));
      for (const l of learning) if (cmsHasChild(spec, l)) for (const w of names) set(accKey(childKey(l, w)), st[accKey(childKey(l, w))].add(gs[gradKeys.indexOf(fastKey(l + 1, w))]));
      const due = learning.filter((l) => n % spec.levels[l].period === 0 || (a.flush && i === t - 1 && n > clocks.lastUpdateAt[l]));
      const restart: number[] = [];
      for (const l of due) {
        clocks.updatesFired[l]++;
        clocks.lastUpdateAt[l] = n;
        fired.push(l);
        const keys = names.map((w) => fastKey(l, w));
        if (cmsHasChild(spec, l)) keys.push(...names.map((w) => childKey(l, w)));
        const eta = spec.levels[l].learningRate;
        const tr = spec.transforms[l];
        if (!tr) {
          for (const key of keys) set(key, st[key].sub(st[accKey(key)].mul(eta)));
        } else {
          const grads: NamedTensors = {};
          const ps: NamedTensors = {};
          const opt: NamedTensors = {};
          for (const key of keys) (grads[key] = st[accKey(key)]), (ps[key] = st[key]);
          for (const [sk, v] of Object.entries(st)) {
            if (sk.startsWith(`opt/L${l}::`)) opt[sk.slice(`opt/L${l}`.length)] = v;
            else if (keys.some((p) => sk.startsWith(`opt/${p}::`))) opt[sk.slice(4)] = v;
          }
          const r = tr.update(grads, opt, ps, clocks.updatesFired[l]);
          for (const key of keys) set(key, st[key].add(r.updates[key].mul(eta)));
          for (const [sk, v] of Object.entries(r.state)) set(sk.startsWith('::') ? `opt/L${l}${sk}` : `opt/${sk}`, v);
        }
        for (const key of keys) set(accKey(key), tf.zerosLike(st[key]));
        if (cmsHasChild(spec, l)) restart.push(l + 1);
      }
      for (const c of restart) {
        const fresh: NamedTensors = {};
        for (const w of names) {
          set(fastKey(c, w), st[childKey(c - 1, w)].clone());
          fresh[fastKey(c, w)] = st[fastKey(c, w)];
          set(accKey(fastKey(c, w)), tf.zerosLike(st[fastKey(c, w)]));
        }
        const tr = spec.transforms[c];
        if (tr) for (const [sk, v] of Object.entries(tr.init(fresh))) set(sk.startsWith('::') ? `opt/L${c}${sk}` : `opt/${sk}`, v);
      }
    });
    clocks.tokensSeen = n;
  }
  const y = tf.concat(ys, 1);
  const losses = tf.concat(ls, 1);
  tf.dispose([...ys, ...ls]);
  return { y, losses, state: st as CmsState, clocks, fired };
}
