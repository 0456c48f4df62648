/**
 * What the deployment tests share: they start real programs (nginx, prometheus, promtool) from
 * the shipped config files. A missing program is a failure with the fix in its message, never a
 * silent skip; a shipped file that no longer has the line a test substitutes breaks it loudly.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** Absolute path of `command` (also looked up in /usr/sbin); throws naming the Debian package when absent. */
export function requireCommand(command: string, debianPackage: string): string {
  try {
    return execFileSync('bash', ['-c', `PATH="$PATH:/usr/sbin:/sbin" command -v ${command}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${command} is not installed: run \`bash scripts/ensure-packages.sh\` (installs Debian's ${debianPackage}); npm test does it first`);
  }
}

/** A free TCP port on `host`. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Replaces every `from` in the shipped file `file`'s text by `to`; `from` must be there. */
export function substitute(file: string, text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`${file} no longer contains "${from}": update its test`);
  return text.split(from).join(to);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(child: ChildProcess | null, graceMs = 5000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs))]);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited;
  }
}
