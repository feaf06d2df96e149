import { connect, createServer } from 'node:net';
import type { Server } from 'node:net';
import { platform } from 'node:os';
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'undici';
import { createActor } from 'xstate';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startStatelyInspector } from '../../src/infra/inspector.ts';
import type { SagaInspector } from '../../src/infra/inspector.ts';
import { orderSaga } from '../../src/machines/orderSaga.ts';
import { freePort } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

/*
 * `SAGA_INSPECT=stately`: the @statelyai/inspect bridge (README "Watching sagas in the Stately
 * inspector"). It listens on loopback unless INSPECT_HOST says otherwise, serves the page that
 * embeds the Stately inspector, and relays every saga actor's events to that page's WebSocket and
 * to no other site's page. Real sockets throughout.
 */

const running: SagaInspector[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const inspector of running.splice(0)) inspector.stop();
  for (const server of servers.splice(0)) server.close();
});

async function start(options: { port: number; host?: string }): Promise<SagaInspector> {
  const inspector = await startStatelyInspector(options);
  running.push(inspector);
  return inspector;
}

/** Whether a TCP connection to `host:port` is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A WebSocket to the bridge as a page of `origin` opens it; resolves once open, rejects if refused. */
function pageSocket(port: number, origin: string): Promise<{ socket: WebSocket; messages: string[] }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}`, { headers: { Origin: origin } });
  const messages: string[] = [];
  socket.addEventListener('message', (event) => messages.push(String(event.data)));
  return new Promise((resolve, reject) => {
    socket.addEventListener('open', () => resolve({ socket, messages }));
    socket.addEventListener('error', () => reject(new Error(`the bridge refused a page of ${origin}`)));
  });
}

// Every 127.x.y.z address is this machine's on Linux: a server bound to 127.0.0.1 alone refuses
// 127.0.0.2, one bound to every interface accepts it. Other systems route only 127.0.0.1.
const onLinux = platform() === 'linux';

describe('the Stately inspector bridge', () => {
  it('listens on 127.0.0.1 only by default, and serves the page embedding the Stately inspector', async () => {
    const port = await freePort();
    const inspector = await start({ port });
    expect(inspector.url).toBe(`http://127.0.0.1:${port}`);

    const page = await fetch(inspector.url);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('src="https://stately.ai/inspect"');
    // The page streams from the address it was opened at, not from a fixed `localhost`.
    expect(html).toContain("new WebSocket('ws://' + location.host)");

    expect(await accepts('127.0.0.1', port)).toBe(true);
    if (onLinux) expect(await accepts('127.0.0.2', port)).toBe(false);
  });

  it.skipIf(!onLinux)('listens where INSPECT_HOST says, e.g. every interface', async () => {
    const port = await freePort();
    const inspector = await start({ port, host: '0.0.0.0' });
    expect(await accepts('127.0.0.2', port)).toBe(true);
    // This process still reaches it, on loopback.
    expect(inspector.url).toBe(`http://127.0.0.1:${port}`);
  });

  it("relays each saga actor's events to the inspector page", async () => {
    const port = await freePort();
    const inspector = await start({ port });
    const { socket, messages } = await pageSocket(port, `http://127.0.0.1:${port}`);

    const orderId = randomUUID();
    const actor = createActor(orderSaga, { inspect: inspector.inspect });
    actor.start();
    actor.send({
      type: 'OrderAccepted',
      data: {
        order_id: orderId,
        user_id: 'user-inspect',
        from_amount: '1000',
        from_currency: 'USDT',
        to_currency: 'BTC',
        order_type: 'market',
        accepted_at: new Date().toISOString(),
      },
    });

    const relayed = await until(
      () => messages.find((m) => m.includes(orderId) && m.includes('quotingPrice')),
      'the OrderAccepted snapshot on the page',
      10_000,
    );
    expect(relayed).toContain('OrderAccepted');
    expect(messages.some((m) => m.includes('orderSaga'))).toBe(true);
    actor.stop();
    socket.close();
  });

  it('refuses the WebSocket of a page from another site, which could otherwise read every order', async () => {
    const port = await freePort();
    await start({ port });
    await expect(pageSocket(port, 'http://attacker.example')).rejects.toThrow(
      'the bridge refused a page of http://attacker.example',
    );
    // The bridge page itself, by any of loopback's names, is let in.
    for (const origin of [`http://localhost:${port}`, `http://127.0.0.1:${port}`]) {
      const { socket } = await pageSocket(port, origin);
      socket.close();
    }
  });

  it('says which address and variables when the port is taken', async () => {
    const port = await freePort();
    const taken = createServer();
    servers.push(taken);
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    await expect(startStatelyInspector({ port })).rejects.toThrow(
      `The Stately inspector bridge cannot listen on 127.0.0.1:${port} (INSPECT_HOST, INSPECT_PORT): listen EADDRINUSE`,
    );
  });
});

describe('INSPECT_HOST', () => {
  it('is 127.0.0.1 unless set', () => {
    expect(loadConfig({}).inspectHost).toBe('127.0.0.1');
    expect(loadConfig({ INSPECT_HOST: '0.0.0.0' }).inspectHost).toBe('0.0.0.0');
  });

  it('is refused when empty, naming the variable', () => {
    expect(() => loadConfig({ INSPECT_HOST: '' })).toThrow(/INSPECT_HOST/);
  });
});
