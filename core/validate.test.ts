/** core/validate: unknown keys via getConfig (nested objects, arrays, sub-layers), chunk / period constraints. */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { checkChunkedBlock, checkLayerConfigKeys, refuseUnknownKeys } from './validate';

class Part extends tf.layers.Layer {
  static className = 'NlValidateTestPart';
  readonly cfg: Record<string, unknown>;
  constructor(args: Record<string, unknown> = {}) {
    super(args as tf.serialization.ConfigDict);
    // reports its resolved config (known keys only), as the project's layers do
    const levels = (args.levels as Array<{ period: number }> | undefined) ?? [{ period: 0 }];
    this.cfg = { chunkSize: args.chunkSize ?? 16, levels: levels.map((l) => ({ period: l.period })), opts: { a: (args.opts as { a?: number } | undefined)?.a ?? 1 } };
  }
  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...(this.cfg as tf.serialization.ConfigDict) };
  }
}
class Block extends tf.layers.Layer {
  static className = 'NlValidateTestBlock';
  readonly mixer: Part;
  constructor(args: { mixer?: { className: string; config?: Record<string, unknown> } } = {}) {
    super({});
    this.mixer = new Part(args.mixer?.config ?? {});
  }
  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), mixer: { className: 'NlValidateTestPart', config: {} } };
  }
}

describe('core/validate', () => {
  it('refuses unknown keys at every level with the full path and the allowed keys', () => {
    expect(() => refuseUnknownKeys({ a: 1, lr: 2 }, ['a'], 'x.config')).to.throw(/^x\.config\.lr: unknown key \(allowed: a\)/);
    const ok = { mixer: { className: 'NlValidateTestPart', config: { chunkSize: 8, levels: [{ period: 16 }], opts: { a: 2 } } } };
    checkLayerConfigKeys(new Block(ok), ok, 'b');
    const bad = (c: unknown): string => {
      try {
        checkLayerConfigKeys(new Block(c as never), c, 'model.blocks[0].config');
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(bad({ typo: 1 })).to.match(/^model\.blocks\[0\]\.config\.typo: unknown key for NlValidateTestBlock/);
    expect(bad({ mixer: { className: 'NlValidateTestPart', config: { chunkSiz: 8 } } })).to.match(/^model\.blocks\[0\]\.config\.mixer\.config\.chunkSiz: unknown key for NlValidateTestPart \(allowed: chunkSize, levels, opts\)/);
    expect(bad({ mixer: { className: 'NlValidateTestPart', config: { levels: [{ period: 16, lr: 1 }] } } })).to.match(/mixer\.config\.levels\[0\]\.lr: unknown key/);
    expect(bad({ mixer: { className: 'NlValidateTestPart', config: { opts: { a: 1, b: 2 } } } })).to.match(/mixer\.config\.opts\.b: unknown key/);
    expect(bad({ mixer: { className: 'NlValidateTestPart', extra: 1 } })).to.match(/mixer\.extra: unknown key/);
    expect(bad({ mixer: null })).to.match(/mixer: must be \{className, config\}/);
  });

  it('chunk sizes must divide seqLength; level periods must be multiples of the other parts\' chunk sizes', () => {
    const part = (c: Record<string, unknown>): Part => new Part(c);
    const run = (mixer: Record<string, unknown>, ffn: Record<string, unknown>, T: number): string => {
      try {
        checkChunkedBlock([{ layer: part(mixer), path: 'm' }, { layer: part({ chunkSize: undefined, ...ffn }), path: 'f' }], T);
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(run({ chunkSize: 16 }, { chunkSize: 16, levels: [{ period: 32 }] }, 64)).to.equal('');
    expect(run({ chunkSize: 16 }, { chunkSize: 16 }, 17)).to.match(/^m\.chunkSize: 16 does not divide training\.seqLength \(17\)/);
    expect(run({ chunkSize: 64 }, { chunkSize: 16 }, 32)).to.match(/^m\.chunkSize: 64 is larger than training\.seqLength \(32\)/);
    expect(run({ chunkSize: 16 }, { chunkSize: 8, levels: [{ period: 24 }] }, 64)).to.match(/^f\.levels\[0\]\.period: 24 is not a multiple of m\.chunkSize \(16\)/);
  });
});

describe('core/validate value-schema kit', () => {
  it('checks values with one wording and the field path', () => {
    const { fields, is, nullable, withDefault, describeNumber } = require('./validate') as typeof import('./validate');
    expect(() => is.posInt(0, 'NlTitansMemory.chunkSize')).to.throw(/^NlTitansMemory\.chunkSize: must be a positive integer, got 0$/);
    expect(() => is.number({ min: 0, below: 1 })(1, 'm.decay')).to.throw(/^m\.decay: must be a number in \[0, 1\), got 1$/);
    expect(() => is.oneOf(['a', 'b'])('c', 'x.mode')).to.throw(/^x\.mode: must be one of 'a', 'b', got "c"$/);
    expect(() => is.bool()('yes', 'x.flag')).to.throw(/^x\.flag: must be a boolean, got "yes"$/);
    expect(describeNumber({ above: 0 })).to.equal('a finite number > 0');
    expect(describeNumber({ integer: true, min: 0 })).to.equal('an integer >= 0');
    expect(withDefault(is.posInt, 4)(null, 'p')).to.equal(4);
    expect(() => withDefault(is.posInt, 4, 'undefined')(null, 'p')).to.throw(/^p: must be a positive integer, got null/);
    expect(nullable(is.posInt)(undefined, 'p')).to.equal(null);
    expect(fields({ a: 2 }, { a: is.posInt, b: withDefault(is.bool(), true) }, 'root')).to.deep.equal({ a: 2, b: true });
    expect(() => fields({ a: 2, b: 1 }, { a: is.posInt, b: withDefault(is.bool(), true) }, 'root')).to.throw(/^root\.b: must be a boolean, got 1$/);
  });
});
