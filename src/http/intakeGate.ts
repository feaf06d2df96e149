import type { MiddlewareHandler } from 'hono';
import { problemResponse } from './problems.ts';

/**
 * The HTTP side of a graceful stop. While open it counts the requests in flight; once closed it
 * answers every new request 503 (problem+json, Retry-After) and `/health` says the service is
 * shutting down, so clients and load balancers go elsewhere, while the requests already in flight
 * finish (an order they place is accepted and will be carried out).
 */
export function createIntakeGate(options: { retryAfterSeconds?: number } = {}) {
  const retryAfter = String(options.retryAfterSeconds ?? 5);
  let closed = false;
  let inFlight = 0;
  let waiters: (() => void)[] = [];

  const settle = () => {
    if (inFlight > 0) return;
    const done = waiters;
    waiters = [];
    for (const resolve of done) resolve();
  };

  const middleware: MiddlewareHandler = async (c, next) => {
    if (closed) {
      c.header('Retry-After', retryAfter);
      c.header('Connection', 'close');
      if (c.req.path === '/health') return c.json({ status: 'shutting_down' }, 503);
      return problemResponse(c, 503, {
        type: 'urn:market-order-saga:problem:shutting_down',
        title: 'Shutting down',
        detail: `This process is stopping and takes no new requests; retry in ${retryAfter} s (another process, or this one restarted, will answer)`,
      });
    }
    inFlight += 1;
    try {
      await next();
    } finally {
      inFlight -= 1;
      if (closed) settle();
    }
  };

  return {
    middleware,
    /** Stops intake: every request from now on gets 503. */
    close(): void {
      closed = true;
    },
    get closed(): boolean {
      return closed;
    },
    /** Requests being served right now. */
    get inFlight(): number {
      return inFlight;
    },
    /** Resolves once no request is in flight (call after close()). */
    drained(): Promise<void> {
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}

export type IntakeGate = ReturnType<typeof createIntakeGate>;
