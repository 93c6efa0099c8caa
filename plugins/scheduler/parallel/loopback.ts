/**
 * An in-process transport pair (both ends in one thread, one tfjs engine): for tests of the protocol
 * and of the reduction math. Messages are structured-cloned and delivered on a later macrotask, as a
 * worker would see them.
 */
import type { CoordinatorTransport, FromReplica, ReplicaTransport, ToReplica } from './protocol';

export function loopbackPair(): { coordinator: CoordinatorTransport; replica: ReplicaTransport } {
  let toReplica: ((m: ToReplica) => void) | null = null;
  let toCoordinator: ((m: FromReplica) => void) | null = null;
  let open = true;
  const deliver = <M>(m: M, h: () => ((m: M) => void) | null): void => {
    const copy = structuredClone(m);
    setTimeout(() => {
      if (open) h()?.(copy);
    }, 0);
  };
  return {
    coordinator: {
      send: (m) => deliver(m, () => toReplica),
      onMessage: (h) => (toCoordinator = h),
      onError: () => undefined,
      close: async () => {
        open = false;
      },
    },
    replica: {
      send: (m) => deliver(m, () => toCoordinator),
      onMessage: (h) => (toReplica = h),
      onError: () => undefined,
      close: async () => undefined,
    },
  };
}
