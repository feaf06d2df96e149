import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';

export interface TcpProxy {
  /** The address the proxy listens on (127.0.0.1 unless asked otherwise). */
  readonly host: string;
  readonly port: number;
  /** Connections clients opened through the proxy so far, those refused while cut included. */
  readonly connections: number;
  /**
   * The network fails: every open connection is cut and new ones are refused until restore().
   * `close` (default) ends them quietly, and a driver may wait in silence for the server to come
   * back; `reset` answers with a TCP reset, as the host of a stopped server does, so every
   * connection attempt fails at once. `answers`: requests still reach the server, but each
   * connection is cut as soon as the server starts to answer, so the client never learns what its
   * request did (a network failing after the request left).
   */
  cut(how?: 'close' | 'reset' | 'answers'): void;
  restore(): void;
  /**
   * The connections open through the proxy now: the client's address and the local port of the
   * proxy's own connection to the target (the peer port the server sees), so that a server's view
   * of its connections can be traced back to the client that opened each.
   */
  links(): { readonly client: string; readonly upstreamPort: number }[];
  close(): Promise<void>;
}

/**
 * A TCP proxy to `target` that a test can cut, as a network partition or a server restart would:
 * clients see their connections reset in the middle of whatever they were doing (a query, a
 * COMMIT whose answer never comes back) and cannot reconnect until it is restored.
 */
export async function startTcpProxy(
  target: { host: string; port: number },
  listen: { readonly host?: string } = {},
): Promise<TcpProxy> {
  const host = listen.host ?? '127.0.0.1';
  const open = new Set<Socket>();
  const upstreams = new Map<Socket, Socket>();
  let down: 'close' | 'reset' | 'answers' | undefined;
  let connections = 0;
  const drop = (socket: Socket) => (down === 'reset' ? socket.resetAndDestroy() : socket.destroy());
  const server = createServer((client) => {
    connections += 1;
    if (down === 'close' || down === 'reset') {
      drop(client);
      return;
    }
    const upstream = connect(target.port, target.host);
    upstreams.set(client, upstream);
    client.once('close', () => upstreams.delete(client));
    if (down === 'answers') {
      open.add(client).add(upstream);
      client.pipe(upstream);
      // The first byte of the answer ends both sides: the request did reach the server.
      upstream.once('data', () => {
        client.destroy();
        upstream.destroy();
      });
      for (const socket of [client, upstream]) {
        socket.on('error', () => socket.destroy());
        socket.on('close', () => {
          open.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      return;
    }
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      open.add(socket);
      socket.pipe(other);
      socket.on('error', () => other.destroy());
      socket.on('close', () => {
        open.delete(socket);
        other.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the proxy has no port');
  return {
    host,
    port: address.port,
    get connections() {
      return connections;
    },
    cut(how = 'close') {
      down = how;
      for (const socket of open) drop(socket);
    },
    restore() {
      down = undefined;
    },
    links: () =>
      [...upstreams].flatMap(([client, upstream]) =>
        client.remoteAddress && upstream.localPort
          ? [{ client: client.remoteAddress, upstreamPort: upstream.localPort }]
          : [],
      ),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
