import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { countKernels, startKernelCounter, startPeakBytes, withPeakBytes } from './profiling';
import { expectNoLeakedTensors } from './testing';

describe('core profiling: kernel counter and peak bytes', () => {
  it('counts registered kernel calls by name, forward and backward, and restores the engine when stopped', () => {
    const before = (tf.engine() as unknown as { runKernelFunc: unknown }).runKernelFunc;
    const a = tf.tensor1d([1, 2, 3]);
    const { result, kernels } = countKernels(() => tf.tidy(() => a.add(a).mul(2).sum().dataSync()[0]));
    expect(result).to.equal(24);
    expect(kernels.byKernel.Add).to.equal(1);
    expect(kernels.byKernel.Multiply).to.equal(1);
    expect(kernels.byKernel.Sum).to.equal(1);
    expect(kernels.total).to.equal(Object.values(kernels.byKernel).reduce((x, y) => x + y, 0));
    // gradients run kernels too
    const g = countKernels(() => tf.tidy(() => tf.grad((x: tf.Tensor) => x.square().sum())(a).dataSync()));
    expect(g.kernels.total).to.be.greaterThan(2);
    expect((tf.engine() as unknown as { runKernelFunc: unknown }).runKernelFunc).to.equal(before);
    a.dispose();
  });

  it('nested counters each see their own calls; customGrad ops are counted separately', () => {
    const outer = startKernelCounter();
    const x = tf.scalar(2);
    tf.tidy(() => x.add(1));
    const inner = startKernelCounter();
    const f = tf.customGrad(((v: tf.Tensor) => ({ value: v.mul(3), gradFunc: (dy: tf.Tensor) => dy.mul(3) })) as never) as (v: tf.Tensor) => tf.Tensor;
    tf.tidy(() => f(x));
    const ic = inner.stop();
    const oc = outer.stop();
    expect(ic.customOps).to.equal(1);
    expect(ic.byKernel.Multiply).to.equal(1);
    expect(oc.total).to.equal(ic.total + 1);
    expect(outer.stop()).to.deep.equal(oc); // idempotent
    x.dispose();
  });

  it('peak bytes: the high-water mark of live buffers, views counted once', () => {
    const { peakBytes } = withPeakBytes(() =>
      tf.tidy(() => {
        const big = tf.zeros([1000]); // 4000 bytes
        big.reshape([10, 100]); // a view: no new buffer
      }),
    );
    expect(peakBytes - tf.memory().numBytes).to.be.at.least(4000).and.below(8000);
    const p = startPeakBytes();
    const t = tf.zeros([500]);
    t.dispose();
    p.reset();
    expect(p.stop()).to.equal(tf.memory().numBytes);
  });

  it('no leaked tensors', async () => {
    await expectNoLeakedTensors(() => {
      const k = startKernelCounter();
      const p = startPeakBytes();
      tf.tidy(() => {
        tf.ones([4]).add(1);
      });
      p.stop();
      k.stop();
    });
  });
});
