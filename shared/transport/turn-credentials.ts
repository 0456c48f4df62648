/**
 * Short-lived TURN credentials for one tab (coturn's TURN REST API, `use-auth-secret`): the
 * username is "<expiry unix seconds>.<tab>" and the password base64(HMAC-SHA1(secret, username)),
 * so coturn checks them with the shared secret alone and they stop working at expiry. The
 * coordinator mints them (WebCrypto: no node: import) and hands them to each tab with its ICE
 * servers; deploy/coturn/turnserver.conf sets the same secret and `rest-api-separator=.`.
 */

export interface TurnCredentials {
  username: string;
  credential: string;
  /** Unix seconds after which coturn refuses them. */
  expires: number;
}

export async function turnCredentials(secret: string, tab: string, ttlSeconds: number, nowMs = Date.now()): Promise<TurnCredentials> {
  if (!secret) throw new Error('turnCredentials: empty secret');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(tab)) throw new Error('turnCredentials: tab id must be 1-64 characters A-Z a-z 0-9 _ -');
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 60 || ttlSeconds > 7 * 86400) throw new Error('turnCredentials: ttl must be 60 s .. 7 days');
  const expires = Math.floor(nowMs / 1000) + ttlSeconds;
  const username = `${expires}.${tab}`;
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign']);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(username)));
  return { username, credential: btoa(String.fromCharCode(...mac)), expires };
}
