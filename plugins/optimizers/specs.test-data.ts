/** Optimizer specs shared by the state/leak/MNIST tests (test data; not exported by the plugin). */
import type { TransformSpec } from '../../core';

/** One config per optimizer variant, tuned only to train the tests' small MLPs stably. */
export const TEST_SPECS: Record<string, TransformSpec> = {
  adamw: { transform: 'adamw', config: { learningRate: 0.003, weightDecay: 0.01 } },
  momentum: { transform: 'assocMomentum', config: { learningRate: 0.05, alpha: 0.9 } },
  momentumDiagonal: { transform: 'assocMomentum', config: { learningRate: 0.003, alpha: 0.9, preconditioner: 'diagonal' } },
  momentumLearned: { transform: 'assocMomentum', config: { learningRate: 0.003, alpha: 0.9, preconditioner: 'learned', pLearningRate: 0.05 } },
  deltaMomentum: { transform: 'deltaMomentum', config: { learningRate: 0.05, alpha: 0.9 } },
  deltaMomentumLearnedMatrix: { transform: 'deltaMomentum', config: { learningRate: 0.05, alpha: 0.9, preconditioner: 'learnedMatrix', pLearningRate: 0.01 } },
  deltaMomentumLearnedMatrixIn: { transform: 'deltaMomentum', config: { learningRate: 0.05, alpha: 0.9, preconditioner: 'learnedMatrix', pSide: 'in', pLearningRate: 0.01 } },
  m3BeforeNs: { transform: 'm3', config: { learningRate: 0.01, frequency: 3, adamLearningRate: 0.003, precondition: 'beforeNs' } },
  dmgdL2: { transform: 'dmgd', config: { learningRate: 0.1, innerLoss: 'l2', hidden: 8 } },
  dmgdDot: { transform: 'dmgd', config: { learningRate: 0.1, innerLoss: 'dot', hidden: 8 } },
  muon: { transform: 'muon', config: { learningRate: 0.003 } },
  dgd: { transform: 'dgd', config: { learningRate: 0.1 } },
  m3: { transform: 'm3', config: { learningRate: 0.001, frequency: 4, adamLearningRate: 0.003 } },
  m3Ema: { transform: 'm3', config: { learningRate: 0.0003, momentum: 'ema', frequency: 4, adamLearningRate: 0.003 } },
  everyK2M3: { transform: 'everyK', config: { k: 2, transform: { transform: 'm3', config: { learningRate: 0.0003, frequency: 2, adamLearningRate: 0.003 } } } },
};
