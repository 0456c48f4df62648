/**
 * The dashboard's connection to the coordinator: socket.io namespace `/operator` with the
 * operator token in the handshake. Everything arrives by push (swarm snapshots, iterations,
 * events); actions go out as acknowledged events.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { io, type Socket } from 'socket.io-client';

import type {
  Ack,
  EventRow,
  IterationRecord,
  OperatorInit,
  OperatorToServer,
  RunSummary,
  ServerToOperator,
  SwarmSnapshot,
} from '../../../shared/protocol/operator';

export type Connection = 'no-token' | 'connecting' | 'connected' | 'refused' | 'disconnected';

const MAX_EVENTS = 5000;

/**
 * The token from `#token=...`: a URL fragment never leaves the browser. (A `?token=` query would
 * travel to the server and into logs and history; it is not read.)
 */
export function readToken(): string | null {
  const hash = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  return hash.get('token') || null;
}

export interface OperatorState {
  connection: Connection;
  error: string | null;
  init: OperatorInit | null;
  swarm: SwarmSnapshot | null;
  /** When the last snapshot arrived (local clock), to tick "time connected". */
  swarmAt: number;
  iterations: IterationRecord[];
  events: EventRow[];
  runs: RunSummary[];
}

type OperatorSocket = Socket<ServerToOperator, OperatorToServer>;

export function useOperator(token: string | null) {
  const [state, setState] = useState<OperatorState>({
    connection: token ? 'connecting' : 'no-token',
    error: null,
    init: null,
    swarm: null,
    swarmAt: 0,
    iterations: [],
    events: [],
    runs: [],
  });
  const socketRef = useRef<OperatorSocket | null>(null);

  useEffect(() => {
    if (!token) {
      setState((s) => ({ ...s, connection: 'no-token' }));
      return;
    }
    setState((s) => ({ ...s, connection: 'connecting', error: null }));
    const socket: OperatorSocket = io('/operator', { auth: { token }, transports: ['websocket'] });
    socketRef.current = socket;
    const loadInit = () => {
      socket.timeout(30_000).emit('init', (err: Error | null, r?: Ack<{ init: OperatorInit }>) => {
        if (err || !r) return setState((s) => ({ ...s, error: `no answer from the coordinator: ${err?.message ?? 'empty reply'}` }));
        if (!r.ok) return setState((s) => ({ ...s, error: r.error }));
        setState((s) => ({
          ...s,
          error: null,
          init: r.init,
          swarm: r.init.swarm,
          swarmAt: Date.now(),
          iterations: r.init.iterations,
          events: r.init.events,
          runs: r.init.runs,
        }));
      });
    };
    socket.on('connect', () => {
      setState((s) => ({ ...s, connection: 'connected', error: null }));
      loadInit();
    });
    socket.on('connect_error', (e) => {
      // A refused token is final (the middleware said no); anything else retries on its own.
      if (/token/i.test(e.message)) {
        socket.disconnect();
        setState((s) => ({ ...s, connection: 'refused', error: e.message }));
      } else {
        setState((s) => ({ ...s, connection: 'disconnected', error: `cannot reach the coordinator: ${e.message}` }));
      }
    });
    socket.on('disconnect', (reason) => {
      setState((s) => (s.connection === 'refused' ? s : { ...s, connection: 'disconnected', error: `disconnected (${reason})` }));
      if (reason === 'io server disconnect') setTimeout(() => socket.connect(), 2000);
    });
    socket.on('swarm', (swarm) => setState((s) => ({ ...s, swarm, swarmAt: Date.now() })));
    socket.on('iteration', (row) =>
      setState((s) => {
        const last = s.iterations[s.iterations.length - 1];
        if (last && last.iteration >= row.iteration) return s;
        return { ...s, iterations: [...s.iterations, row] };
      }),
    );
    socket.on('event', (e) =>
      setState((s) => {
        const events = s.events.length >= MAX_EVENTS ? [...s.events.slice(-(MAX_EVENTS - 1)), e] : [...s.events, e];
        return { ...s, events };
      }),
    );
    return () => {
      socket.removeAllListeners();
      socket.disconnect();
      socketRef.current = null;
    };
  }, [token]);

  /** Sends an operator action; resolves with the acknowledgement (errors become { ok: false }). */
  const call = useCallback(<T extends object = object>(event: keyof OperatorToServer, payload?: unknown, timeoutMs = 120_000): Promise<Ack<T>> => {
    const socket = socketRef.current;
    if (!socket || !socket.connected) return Promise.resolve({ ok: false, error: 'not connected to the coordinator' });
    const args = payload === undefined ? [] : [payload];
    return (socket.timeout(timeoutMs).emitWithAck as (ev: string, ...a: unknown[]) => Promise<Ack<T>>)(event, ...args).catch(
      (e: Error) => ({ ok: false, error: e.message }) as Ack<T>,
    );
  }, []);

  const refreshRuns = useCallback(async () => {
    const r = await call<{ runs: RunSummary[] }>('runs');
    if (r.ok) setState((s) => ({ ...s, runs: r.runs }));
    return r;
  }, [call]);

  return { state, call, refreshRuns };
}
