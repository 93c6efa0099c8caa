import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { LanguageModel } from '../plugins/hope';
import { PRESET_NAMES, languageModelConfig, loadPreset, loadRunConfig, presetsDir, runConfigJsonSchema, validateRunConfig } from './config';

const base = { model: { dModel: 8, blocks: [{ className: 'NlHopeBlock' }] } };

describe('cli config', () => {
  it('presets/schema.json is up to date with the zod schema (regenerate: nl schema > presets/schema.json)', () => {
    const onDisk = JSON.parse(fs.readFileSync(path.join(presetsDir(), 'schema.json'), 'utf8'));
    expect(onDisk).to.deep.equal(runConfigJsonSchema());
  });

  it('every preset validates, states its open choices, and the small presets have matched parameter counts (within 10%)', () => {
    const counts: Record<string, number> = {};
    for (const name of PRESET_NAMES) {
      const c = loadPreset(name);
      expect(Object.keys(c.openChoices ?? {}).length, `${name} openChoices`).to.be.greaterThan(2);
      const lm = new LanguageModel(languageModelConfig(c));
      counts[name] = lm.countParams();
      lm.dispose();
    }
    console.log('      parameter counts:', JSON.stringify(counts));
    const ref = counts['hope-small'];
    for (const name of PRESET_NAMES.filter((n) => n.endsWith('-small'))) {
      expect(Math.abs(counts[name] - ref) / ref, `${name}: ${counts[name]} vs hope-small ${ref}`).to.be.lessThan(0.1);
    }
    expect(counts['hope-tiny']).to.be.lessThan(ref / 5);
  });

  it('defaults are filled and repeat expands blocks', () => {
    const c = validateRunConfig({ model: { dModel: 8, blocks: [{ className: 'NlHopeBlock', repeat: 3 }] } });
    expect(c.training.optimizer).to.equal('adam');
    expect(c.data.corpus).to.equal('moby-dick');
    expect(c.model.vocabSize).to.equal(256);
    expect(languageModelConfig(c).blocks.map((b) => b.className)).to.deep.equal(['NlHopeBlock', 'NlHopeBlock', 'NlHopeBlock']);
  });

  it('bad configs: errors name the field path and the allowed values', () => {
    const bad = (raw: unknown, re: RegExp, known?: string[]): void => {
      expect(() => validateRunConfig(raw, { knownClasses: known })).to.throw(re);
    };
    bad({ ...base, training: { optimizer: 'adagrad' } }, /config training\.optimizer: .*"adam".*"adamw".*"sgd"/);
    bad({ model: { dModel: 8, blocks: [] } }, /config model\.blocks: .*>=1/);
    bad({ model: { dModel: 8, blocks: [{ className: 'HopeBlock' }] } }, /config model\.blocks\[0\]\.className: must be a registered layer class name/);
    bad({ ...base, model: { ...base.model, dModel: -1 } }, /config model\.dModel/);
    bad({ ...base, data: { corpus: 'files' } }, /config data\.paths: is required when corpus is 'files'/);
    bad({ ...base, data: { corpus: 'wiki' } }, /config data\.corpus: .*"moby-dick".*"sotu".*"files"/);
    bad({ ...base, training: { stepz: 3 } }, /config training: .*stepz/);
    bad({ ...base, data: { tokenizer: 'bpe', vocabSize: 256 } }, /config data\.vocabSize: must be > 256/);
    bad({ ...base, data: { tokenizer: 'bpe' } }, /config data\.vocabSize: is required when tokenizer is 'bpe'/);
    bad({ ...base, data: { tokenizer: 'wordpiece' } }, /config data\.tokenizer: .*"byte".*"bpe"/);
    bad({ ...base, data: { tokenizer: 'bpe', vocabSize: 512 } }, /config model\.vocabSize: must equal data\.vocabSize \(512\) with the bpe tokenizer, got 256/);
    bad({ ...base, data: { vocabSize: 512 } }, /config data\.vocabSize: is only used with tokenizer 'bpe'/);
    bad({ ...base, model: { ...base.model, vocabSize: 100 } }, /config model\.vocabSize: must be >= 256 with the byte tokenizer/);
    bad({ ...base, training: { seed: -1 } }, /config training\.seed/);
    bad({ model: { dModel: 8, blocks: [{ className: 'NlNope' }] } }, /model\.blocks\[0\]\.className: unknown class 'NlNope' \(registered: NlHopeBlock, NlResidualBlock\)/, ['NlHopeBlock', 'NlResidualBlock']);
  });

  it('JSON and YAML files load the same config; syntax errors name the file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-cfg-'));
    fs.writeFileSync(path.join(dir, 'a.json'), JSON.stringify(base));
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'model:\n  dModel: 8\n  blocks:\n    - className: NlHopeBlock\n');
    fs.writeFileSync(path.join(dir, 'b.yaml'), 'model: [\n');
    expect(loadRunConfig(path.join(dir, 'a.yaml'))).to.deep.equal(loadRunConfig(path.join(dir, 'a.json')));
    expect(() => loadRunConfig(path.join(dir, 'b.yaml'))).to.throw(/b\.yaml: not valid YAML/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
