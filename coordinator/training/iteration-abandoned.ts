/** Thrown inside an iteration when it cannot complete (a stage's last replica lost, a barrier failure). */
export class IterationAbandoned extends Error {
  constructor(readonly stage: number, readonly lostMicrobatches: number[], readonly why = `stage ${stage} lost`) {
    super(`iteration abandoned: ${why}`);
  }
}
