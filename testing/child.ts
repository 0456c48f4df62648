/**
 * Child processes in tests that are always killed, even when the test fails: `spawnChild` starts
 * one in its own process group (so what it forks dies with it) and remembers it; `killChildren`
 * (call it in afterEach/afterAll) SIGKILLs every group still alive and waits for each exit. A
 * process 'exit' hook kills whatever is left if the test runner itself goes down.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';

export interface Child {
  proc: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** SIGKILLs the child's process group and waits for the child to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const alive = new Set<Child>();

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

process.once('exit', () => {
  for (const c of alive) killGroup(c.proc.pid, 'SIGKILL');
});

export function spawnChild(command: string, args: string[], opts: SpawnOptions = {}): Child {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts, detached: true });
  let out = '';
  proc.stdout?.on('data', (d) => (out += d));
  proc.stderr?.on('data', (d) => (out += d));
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => {
      done = true;
      alive.delete(child);
      resolve(code);
    });
    proc.once('error', () => {
      done = true;
      alive.delete(child);
      resolve(null);
    });
  });
  const child: Child = {
    proc,
    output: () => out,
    exited,
    async kill(signal = 'SIGKILL') {
      if (!done) killGroup(proc.pid, signal);
      await exited;
      if (signal !== 'SIGKILL') killGroup(proc.pid, 'SIGKILL'); // whatever the leader left in its group
    },
  };
  alive.add(child);
  return child;
}

/** Kills every child started by spawnChild that is still running, and waits for them. */
export async function killChildren(): Promise<void> {
  await Promise.all([...alive].map((c) => c.kill()));
}

/** Children still running (for assertions). */
export function runningChildren(): number {
  return alive.size;
}

/** A TCP port free on 127.0.0.1 right now (for a child server's --port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
