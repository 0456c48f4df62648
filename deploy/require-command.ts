/**
 * The deployment tests start real programs (nginx, prometheus, promtool). A missing one is a
 * failure with the fix in its message, never a silent skip.
 */
import { execFileSync } from 'node:child_process';

/** Absolute path of `command` (also looked up in /usr/sbin); throws naming the Debian package when absent. */
export function requireCommand(command: string, debianPackage: string): string {
  try {
    return execFileSync('bash', ['-c', `PATH="$PATH:/usr/sbin:/sbin" command -v ${command}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${command} is not installed: run \`bash scripts/ensure-packages.sh\` (installs Debian's ${debianPackage}); npm test does it first`);
  }
}
