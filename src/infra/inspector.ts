import type { InspectionEvent } from 'xstate';

export interface SagaInspector {
  readonly inspect: (event: InspectionEvent) => void;
  readonly url: string;
  stop(): void;
}

/**
 * Starts the @statelyai/inspect bridge: a local WebSocket + HTTP server whose page embeds the
 * Stately inspector (loaded from stately.ai), and an inspector that streams every saga actor's
 * events to it. Loaded only when asked for, so normal runs carry none of it.
 */
export async function startStatelyInspector(port: number, host: string): Promise<SagaInspector> {
  const { createInspectorServer } = await import('@statelyai/inspect/server');
  const { createWebSocketInspector } = await import('@statelyai/inspect');
  const server = createInspectorServer({ port, autoOpen: false });
  const inspector = createWebSocketInspector({ url: `ws://${host}:${port}` });
  return {
    inspect: (event) => inspector.inspect.next?.(event),
    url: `http://${host}:${port}`,
    stop() {
      inspector.stop();
      server.stop();
    },
  };
}
