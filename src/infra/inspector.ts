import type { InspectionEvent } from 'xstate';

export interface SagaInspector {
  readonly inspect: (event: InspectionEvent) => void;
  /** The bridge page to open in a browser. */
  readonly url: string;
  stop(): void;
}

export interface InspectorOptions {
  readonly port: number;
  /**
   * The address the bridge listens on (INSPECT_HOST): loopback unless told otherwise, for its
   * WebSocket streams every saga's events (orders, users, amounts) to whoever connects.
   */
  readonly host?: string;
}

/** The bridge's default address: this machine only. */
export const DEFAULT_INSPECT_HOST = '127.0.0.1';

/** `host` in a URL: IPv6 addresses in brackets. */
const urlHost = (host: string) => (host.includes(':') ? `[${host}]` : host);

/** Where this process reaches a bridge listening on `host`: a wildcard address is reached on loopback. */
function reachableAt(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

/**
 * Starts the @statelyai/inspect bridge: a local WebSocket + HTTP server whose page embeds the
 * Stately inspector (loaded from stately.ai), and an inspector that streams every saga actor's
 * events to it. Loaded only when asked for, so normal runs carry none of it.
 *
 * The package listens on every interface and accepts any page's WebSocket; our patch of it
 * (patches/@statelyai+inspect+*.patch) adds `host`, so it binds loopback by default, and
 * `origins`, so a page of another site open in the same browser cannot read the stream (a
 * browser lets any page open a WebSocket to 127.0.0.1; only the Origin header tells them apart).
 * @throws Error naming the address when the bridge cannot listen (e.g. the port is taken).
 */
export async function startStatelyInspector(options: InspectorOptions): Promise<SagaInspector> {
  const { port } = options;
  const host = options.host ?? DEFAULT_INSPECT_HOST;
  const { createInspectorServer } = await import('@statelyai/inspect/server');
  const { createWebSocketInspector } = await import('@statelyai/inspect');
  const reachable = urlHost(reachableAt(host));
  // The bridge page, opened by any of the names of this machine's loopback or the address given.
  const origins = [...new Set(['localhost', '127.0.0.1', '[::1]', reachable, urlHost(host)])].map(
    (name) => `http://${name}:${port}`,
  );
  const server = createInspectorServer({ port, host, origins, autoOpen: false });
  try {
    await server.listening;
  } catch (error) {
    server.stop();
    throw new Error(
      `The Stately inspector bridge cannot listen on ${urlHost(host)}:${port} (INSPECT_HOST, INSPECT_PORT): ${(error as Error).message}`,
      { cause: error },
    );
  }
  const inspector = createWebSocketInspector({ url: `ws://${reachable}:${port}` });
  return {
    inspect: (event) => inspector.inspect.next?.(event),
    url: `http://${reachable}:${port}`,
    stop() {
      inspector.stop();
      server.stop();
    },
  };
}
