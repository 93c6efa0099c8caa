/** The README's component table must match docs/STATUS.md (component and status, same order). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';

const root = path.resolve(__dirname, '..');

function tableRows(markdown: string, header: RegExp): Array<[string, string]> {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => header.test(l));
  if (start < 0) throw new Error(`table header ${header} not found`);
  const rows: Array<[string, string]> = [];
  for (let i = start + 2; i < lines.length && lines[i].startsWith('|'); i++) {
    const cells = lines[i].split('|').slice(1, -1).map((c) => c.trim());
    rows.push([cells[0], cells[1]]);
  }
  return rows;
}

describe('docs', () => {
  it('README component table matches docs/STATUS.md', () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const status = fs.readFileSync(path.join(root, 'docs', 'STATUS.md'), 'utf8');
    const a = tableRows(readme, /^\| component \| status \|$/);
    const b = tableRows(status, /^\| component \| status \| where \|$/);
    expect(a.length).to.be.greaterThan(5);
    expect(a).to.deep.equal(b);
    for (const [, s] of b) expect(['implemented', 'partial', 'planned']).to.include(s);
  });

  it('every plugin folder has a README and is listed in docs/STATUS.md', () => {
    const status = fs.readFileSync(path.join(root, 'docs', 'STATUS.md'), 'utf8');
    for (const name of fs.readdirSync(path.join(root, 'plugins'))) {
      if (!fs.statSync(path.join(root, 'plugins', name)).isDirectory()) continue;
      if (!fs.existsSync(path.join(root, 'plugins', name, 'plugin.ts'))) continue; // work in progress folders
      expect(fs.existsSync(path.join(root, 'plugins', name, 'README.md')), `plugins/${name}/README.md`).to.equal(true);
      expect(status.includes(`plugins/${name}`), `docs/STATUS.md mentions plugins/${name}`).to.equal(true);
    }
  });
});
