/**
 * The first-party plugins. createDefaultRuntime() loads them all; their class names also feed the
 * "load plugin X" hints shown when a model or config names a class whose plugin is not loaded.
 */
import type { PluginManifest } from '../core';
import { associativeMemoryPlugin } from '../plugins/associative-memory';
import { linearAttentionPlugin } from '../plugins/linear-attention';
import { cmsPlugin } from '../plugins/cms';
import { schedulerPlugin } from '../plugins/scheduler';
import { optimizersPlugin } from '../plugins/optimizers';
import { selfModifyingTitansPlugin } from '../plugins/self-modifying-titans';
import { titansPlugin } from '../plugins/titans';
import { hopePlugin } from '../plugins/hope';
import { createRuntime, addClassHints, type Runtime, type RuntimeOptions } from './runtime';

export function builtinPlugins(): PluginManifest[] {
  return [associativeMemoryPlugin, linearAttentionPlugin, cmsPlugin, schedulerPlugin, optimizersPlugin, titansPlugin, selfModifyingTitansPlugin, hopePlugin];
}

function hints(): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of builtinPlugins()) {
    for (const c of [...(p.layers ?? []), ...(p.optimizers ?? [])]) m.set(c.className, p.name);
  }
  return m;
}
addClassHints(hints());

/** A runtime with every first-party plugin plus `extra` (e.g. third-party plugins). */
export function createDefaultRuntime(extra: readonly PluginManifest[] = [], options: Omit<RuntimeOptions, 'plugins'> = {}): Runtime {
  return createRuntime({ ...options, plugins: [...builtinPlugins(), ...extra] });
}
