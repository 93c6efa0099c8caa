/**
 * Node-only: `nlearn train --workers N` (issue 18). Rank 0 is the CLI's own run (it trains the first slice
 * of every batch, validates, checkpoints and samples as before); ranks 1..N-1 are worker threads, each
 * building the same run from its config (buildRunReplica) and receiving rank 0's weights and optimizer
 * state. Results equal a 1-worker run up to float rounding (plugins/scheduler/parallel).
 */
import type { DataParallelTrainer } from '../plugins/scheduler';
import { availableCores, startNodeDataParallel } from '../plugins/scheduler/node';
import type { ReplicaHandle } from '../plugins/scheduler';
import { createRun, disposeRun, type Run } from './run';

export { availableCores };

/**
 * `--workers` when not given: NL_WORKERS if set (an integer >= 1), else every core
 * (os.availableParallelism), except 1 on the tensorflow backend (libtensorflow is multi-threaded itself).
 */
export function defaultWorkers(backend: string, env: NodeJS.ProcessEnv = process.env): number {
  const v = env.NL_WORKERS;
  if (v !== undefined && v !== '') {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`NL_WORKERS: must be an integer >= 1, got '${v}'`);
    return n;
  }
  return backend === 'tensorflow' ? 1 : availableCores();
}

/** ReplicaFactory of a worker: the run of `config` (its weights are replaced by rank 0's at sync). */
export function buildRunReplica(payload: { config: unknown }): ReplicaHandle {
  const r = createRun(payload.config);
  return { trainer: r.trainer, dispose: () => disposeRun(r) };
}

/** Starts workers - 1 worker threads for `r` (workers >= 2), on `backend` (the backend rank 0 uses). */
export function startRunWorkers(r: Run, workers: number, backend: string): Promise<DataParallelTrainer> {
  return startNodeDataParallel(r.trainer, workers, { backend, module: __filename, export: 'buildRunReplica', payload: { config: r.config } });
}
