/**
 * Why the run is held: the operator's pause, and holds taken by operator actions that need the
 * run still (an export). The one owner of both; the run is paused while either is set.
 */
export class RunHold {
  private pausedByOperator = false;
  private holds = 0;

  /** `apply(paused)` is told every change (the scheduler's setPaused). */
  constructor(private apply: (paused: boolean) => void) {}

  get operatorPaused(): boolean {
    return this.pausedByOperator;
  }

  /** The operator's pause; returns false when nothing changed. */
  setOperatorPause(paused: boolean): boolean {
    if (paused === this.pausedByOperator) return false;
    this.pausedByOperator = paused;
    this.update();
    return true;
  }

  /** Holds the run until the returned release is called (once). */
  hold(): () => void {
    this.holds++;
    this.update();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.update();
    };
  }

  private update(): void {
    this.apply(this.pausedByOperator || this.holds > 0);
  }
}
