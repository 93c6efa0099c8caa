/** Writes presets/schema.json from the zod schema (also `nl schema`). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { presetsDir, runConfigJsonSchema } from '../run/config';

export function schemaText(): string {
  return `${JSON.stringify(runConfigJsonSchema(), null, 2)}\n`;
}

export function writeSchema(file = path.join(presetsDir(), 'schema.json')): string {
  fs.writeFileSync(file, schemaText());
  return file;
}

if (require.main === module) console.log(writeSchema());
