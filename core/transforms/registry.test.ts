import { expect } from 'chai';
import { assertClose } from '../testing';
import { chain, clipByGlobalNorm, everyK, partition } from './combinators';
import { momentum } from './momentum';
import {
  buildTransform,
  createTransform,
  getTransformFactory,
  registerTransformFactory,
  TRANSFORMS,
  transformNames,
  unregisterTransformFactory,
} from './registry';
import { sgd } from './sgd';
import { runTransform } from './testing';
import type { GradientTransformFactory } from './transform';

const grads = [{ a: [3, 4], b: [1] }, { a: [0.1, -0.2], b: [2] }, { a: [1, 1], b: [-1] }, { a: [2, 0], b: [0.5] }];

describe('transforms/registry', () => {
  it('has the built-ins by name', () => {
    expect(Object.keys(TRANSFORMS)).to.include.members(['sgd', 'momentum', 'chain', 'everyK', 'partition', 'clipByGlobalNorm', 'scale', 'scaleByLearningRate']);
  });

  it('builds nested specs that behave like the same transforms built in code', () => {
    const spec = {
      transform: 'chain',
      config: {
        transforms: [
          { transform: 'clipByGlobalNorm', config: { maxNorm: 2 } },
          {
            transform: 'partition',
            config: {
              rules: [{ match: '^a$', label: 'slow' }],
              default: 'fast',
              transforms: {
                slow: { transform: 'everyK', config: { k: 2, transform: { transform: 'momentum', config: { learningRate: 0.1, beta: 0.5 } } } },
                fast: { transform: 'sgd', config: { learningRate: 0.3 } },
              },
            },
          },
        ],
      },
    };
    const fromSpec = runTransform(buildTransform(spec), { a: [0, 0], b: [0] }, grads);
    // Same thing by hand with the code API (labels: a -> slow, everything else -> fast).
    const byHand = chain(
      clipByGlobalNorm(2),
      partition((n) => (n === 'a' ? 'slow' : 'fast'), {
        slow: everyK(2, momentum({ learningRate: 0.1, beta: 0.5 })),
        fast: sgd({ learningRate: 0.3 }),
      }),
    );
    const ref = runTransform(byHand, { a: [0, 0], b: [0] }, grads);
    assertClose(fromSpec.params.a, ref.params.a);
    assertClose(fromSpec.params.b, ref.params.b);
    expect(Object.keys(fromSpec.state).sort()).to.deep.equal(Object.keys(ref.state).sort());
    // And the numbers are not trivial: a moved only at steps 2 and 4.
    expect(fromSpec.updates[0].a).to.deep.equal([0, 0]);
    expect(fromSpec.updates[1].a[0]).to.be.below(0);
  });

  it('{transform: t.name, config: t.config} rebuilds an equivalent transform', () => {
    const t = createTransform('chain', {
      transforms: [
        { transform: 'clipByGlobalNorm', config: { maxNorm: 1 } },
        { transform: 'everyK', config: { k: 2, reduce: 'mean', transform: { transform: 'momentum', config: { learningRate: 0.2, nesterov: true } } } },
      ],
    });
    const again = buildTransform({ transform: t.name, config: t.config });
    expect(again.config).to.deep.equal(t.config);
    const a = runTransform(t, { a: [1, 2], b: [3] }, grads);
    const b = runTransform(again, { a: [1, 2], b: [3] }, grads);
    assertClose(b.params.a, a.params.a);
    assertClose(b.params.b, a.params.b);
  });

  it('errors name the field path', () => {
    expect(() => buildTransform({ transform: 'adamw', config: {} }, 'opt')).to.throw(/opt\.transform: unknown transform 'adamw' \(known: sgd, momentum/);
    expect(() => buildTransform({ transform: 'sgd', config: { learningRate: -1 } }, 'opt')).to.throw(/opt\.config\.learningRate: must be a finite number and >= 0, got -1/);
    expect(() =>
      buildTransform({ transform: 'chain', config: { transforms: [{ transform: 'sgd', config: { learningRate: 1 } }, { transform: 'momentum', config: { learningRate: -2 } }] } }),
    ).to.throw(/transform\.config\.transforms\[1\]\.config\.learningRate: must be/);
    expect(() => buildTransform({ transform: 'everyK', config: { k: 2 } })).to.throw(/transform\.config\.transform: is required/);
    expect(() => buildTransform({ transform: 'chain', config: { transforms: [] } })).to.throw(/transform\.config\.transforms: must be a non-empty array/);
    expect(() => buildTransform({ transform: 'sgd', cfg: {} })).to.throw(/transform\.cfg: unknown option/);
    expect(() =>
      buildTransform({ transform: 'partition', config: { rules: [{ match: '(', label: 'x' }], transforms: { x: { transform: 'sgd', config: { learningRate: 1 } } } } }),
    ).to.throw(/transform\.config\.rules\[0\]\.match: invalid RegExp/);
    expect(() =>
      buildTransform({ transform: 'partition', config: { rules: [{ match: 'a', label: 'y' }], transforms: { x: { transform: 'sgd', config: { learningRate: 1 } } } } }),
    ).to.throw(/transform\.config\.rules\[0\]\.label: must be one of the labels .* \(x\), got "y"/);
  });

  it('partition from config without a default names an unmatched parameter', () => {
    const t = buildTransform({ transform: 'partition', config: { rules: [{ match: '^a', label: 'x' }], transforms: { x: { transform: 'sgd', config: { learningRate: 1 } } } } });
    expect(() => runTransform(t, { b: [0] }, [{ b: [1] }])).to.throw(/parameter 'b' matches no rule \(\^a\) and there is no default label/);
  });

  it('registers plugin factories, refuses conflicts and bad names, and unregisters', () => {
    const halve: GradientTransformFactory = (c, path = 'halfSgd') => ({ ...sgd({ learningRate: 0.5 * Number(c.learningRate) }, path), name: 'halfSgd' });
    registerTransformFactory('halfSgd', halve, 'test-plugin');
    try {
      registerTransformFactory('halfSgd', halve, 'test-plugin'); // same factory again: no-op
      expect(transformNames()).to.include('halfSgd');
      expect(getTransformFactory('halfSgd')).to.equal(halve);
      const r = runTransform(buildTransform({ transform: 'halfSgd', config: { learningRate: 1 } }), { w: [0] }, [{ w: [2] }]);
      assertClose(r.updates[0].w, [-1]);
      // the plugin transform composes with the built-in combinators by name
      const c = buildTransform({ transform: 'everyK', config: { k: 1, transform: { transform: 'halfSgd', config: { learningRate: 1 } } } });
      assertClose(runTransform(c, { w: [0] }, [{ w: [2] }]).updates[0].w, [-1]);
      expect(() => registerTransformFactory('halfSgd', (c2) => halve(c2), 'other-plugin')).to.throw(
        /'halfSgd' by 'other-plugin' is already registered by 'test-plugin'/,
      );
      expect(() => registerTransformFactory('sgd', halve)).to.throw(/'sgd' is a built-in transform/);
      expect(() => registerTransformFactory('half_sgd', halve)).to.throw(/no '_'/);
    } finally {
      expect(unregisterTransformFactory('halfSgd')).to.equal(true);
    }
    expect(getTransformFactory('halfSgd')).to.equal(undefined);
  });
});
