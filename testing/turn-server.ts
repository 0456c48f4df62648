/**
 * A real coturn (Debian's `turnserver`) started from the shipped deploy/coturn/turnserver.conf for
 * tests and benchmarks: listening and relaying on one local address (default 127.0.0.1), with
 * loopback peers allowed for that address only, no TLS, a fresh random static-auth-secret, logs
 * and database in a temp folder removed on stop. Every edit is a `substitute` of a line the
 * shipped file must still contain, so a changed config breaks this loudly instead of silently.
 *
 *   const turn = await startTurnServer();
 *   // coordinator: p2p: { iceServers: [turn.url('udp')], turnSecret: turn.secret }
 *   await turn.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, requireCommand, stopProcess, substitute } from '../deploy/harness.js';
import { until } from './until.js';

const CONF = new URL('../deploy/coturn/turnserver.conf', import.meta.url);
const FILE = 'deploy/coturn/turnserver.conf';

/**
 * The priority benchmarks give coturn: 10 steps above their own (at most -20), so that it stands
 * for a TURN server on a machine of its own rather than one more process on a busy CPU.
 */
export const TURN_NICENESS = Math.max(-20, getPriority() - 10);

export interface TurnServerOptions {
  /** Address coturn listens and relays on (default 127.0.0.1). */
  ip?: string;
  /** Peer addresses coturn may relay to besides `ip` (the shipped file denies private ranges). */
  allowedPeers?: string[];
  /**
   * UDP ports coturn may relay from (default 1000). Each allocation holds one until it expires
   * (10 min), and a tab that is killed never frees its own: a benchmark's runs share one coturn,
   * and four striped runs need ~60 (51 ports made the fourth fail every link).
   */
  relayPorts?: number;
  /**
   * Scheduling priority of the coturn process (`os.setPriority`; below the parent's needs root).
   * Benchmarks give it a higher one than their own, as for a TURN server on its own machine: a
   * starved coturn drops datagrams from its sockets' buffers.
   */
  niceness?: number;
}

export interface TurnServer {
  port: number;
  secret: string;
  ip: string;
  /** `turn:<ip>:<port>?transport=udp|tcp`. */
  url(transport: 'udp' | 'tcp'): string;
  /** coturn's log so far (file and stdout). */
  log(): string;
  stop(): Promise<void>;
  /** SIGKILL at once, synchronously (a signal handler's last resort). */
  killNow(): void;
}

/** The path of `turnserver`, or null when coturn is not installed (scripts/ensure-packages.sh installs it). */
export function turnServerBinary(): string | null {
  try {
    return requireCommand('turnserver', 'coturn');
  } catch {
    return null;
  }
}

export async function startTurnServer(opts: TurnServerOptions = {}): Promise<TurnServer> {
  const bin = requireCommand('turnserver', 'coturn');
  const ip = opts.ip ?? '127.0.0.1';
  const secret = 'test-secret-' + Math.random().toString(36).slice(2);
  const dir = mkdtempSync(join(tmpdir(), 'swarm-coturn-'));
  const port = await freePort(ip);
  const relayPorts = opts.relayPorts ?? 1000;
  if (!(Number.isInteger(relayPorts) && relayPorts >= 2 && relayPorts <= 4000)) throw new Error(`relayPorts ${relayPorts}: 2 .. 4000`);
  const relayBase = 50_000 + Math.floor(Math.random() * (15_000 - relayPorts));
  const allowed = [ip, ...(opts.allowedPeers ?? [])].map((a) => `allowed-peer-ip=${a}\n`).join('');
  let conf = readFileSync(CONF, 'utf8');
  conf = substitute(FILE, conf, 'static-auth-secret=CHANGE-ME-to-32-random-bytes-openssl-rand-hex-32', `static-auth-secret=${secret}`);
  conf = substitute(FILE, conf, 'listening-port=3478\n', `listening-port=${port}\nlistening-ip=${ip}\nrelay-ip=${ip}\n`);
  conf = substitute(FILE, conf, 'tls-listening-port=5349\n', 'no-tls\nno-dtls\n');
  conf = substitute(FILE, conf, 'external-ip=203.0.113.10\n', '');
  conf = substitute(FILE, conf, 'min-port=49160\n', `min-port=${relayBase}\n`);
  conf = substitute(FILE, conf, 'max-port=49999\n', `max-port=${relayBase + relayPorts - 1}\n`);
  conf = substitute(FILE, conf, 'cert=/etc/letsencrypt/live/swarm.example.org/fullchain.pem\n', '');
  conf = substitute(FILE, conf, 'pkey=/etc/letsencrypt/live/swarm.example.org/privkey.pem\n', '');
  conf = substitute(FILE, conf, 'no-loopback-peers\n', `allow-loopback-peers\n${allowed}`);
  conf = substitute(FILE, conf, 'log-file=/var/log/turnserver/turnserver.log\n', `log-file=${join(dir, 'turn.log')}\nverbose\nuserdb=${join(dir, 'turndb')}\npidfile=${join(dir, 'turn.pid')}\n`);
  writeFileSync(join(dir, 'turnserver.conf'), conf);
  let out = '';
  const child: ChildProcess = spawn(bin, ['-c', join(dir, 'turnserver.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (opts.niceness !== undefined && child.pid !== undefined) {
    try {
      setPriority(child.pid, opts.niceness);
    } catch (e) {
      out += `[turn-server] priority ${opts.niceness} not set: ${(e as Error).message}\n`;
    }
  }
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const log = () => {
    try {
      return readFileSync(join(dir, 'turn.log'), 'utf8') + out;
    } catch {
      return out;
    }
  };
  const stop = async () => {
    await stopProcess(child);
    if (!process.env.KEEP_TURN_DIR) rmSync(dir, { recursive: true, force: true });
    else console.log('turn dir', dir);
  };
  try {
    await until(() => /listener opened on|Total (UDP|General) servers/i.test(log()) || child.exitCode !== null, 'turnserver listening', 15_000);
    if (child.exitCode !== null) throw new Error(`turnserver exited ${child.exitCode}:\n${log()}`);
  } catch (e) {
    await stop();
    throw e;
  }
  await new Promise((r) => setTimeout(r, 300));
  return { port, secret, ip, url: (t) => `turn:${ip}:${port}?transport=${t}`, log, stop, killNow: () => void child.kill('SIGKILL') };
}
