/**
 * Registration of the library's classes with tfjs serialisation (tf.serialization.registerClass), the
 * way tfjs's own layers register themselves: importing a plugin (its manifest, made with definePlugin)
 * registers its layer and optimizer classes, so `tf.loadLayersModel` finds them in a fresh process
 * without a runtime. Idempotent: the same class twice is a no-op. A class name already bound to a
 * different class is never overwritten here; the registry (createRuntime) refuses it, naming both owners.
 */
import * as tf from '@tensorflow/tfjs';

type Serializable = tf.serialization.SerializableConstructor<tf.serialization.Serializable>;

/** className -> who registered it (kept on globalThis so two copies of this module agree). */
const OWNERS_KEY = Symbol.for('nested-learning/serialization/owners');
function owners(): Map<string, { cls: unknown; owner: string }> {
  const g = globalThis as unknown as Record<symbol, Map<string, { cls: unknown; owner: string }>>;
  return (g[OWNERS_KEY] ??= new Map());
}

export type SerializableStatus = 'registered' | 'already-registered' | { conflict: string };

/** The class tfjs deserialises `className` to, or undefined. */
export function registeredTfClass(className: string): unknown {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className] as unknown;
  return Array.isArray(entry) ? entry[0] : undefined;
}

/**
 * Registers `cls` under its static className unless that name is taken. Returns 'registered',
 * 'already-registered' (the same class), or {conflict: owner} (a different class holds the name;
 * nothing changed).
 */
export function registerSerializable(cls: { className: string }, owner: string): SerializableStatus {
  const cn = cls.className;
  const prev = registeredTfClass(cn);
  if (prev === cls) return 'already-registered';
  if (prev !== undefined) return { conflict: owners().get(cn)?.owner ?? 'other code (tf.serialization.registerClass)' };
  tf.serialization.registerClass(cls as unknown as Serializable);
  owners().set(cn, { cls, owner });
  return 'registered';
}
