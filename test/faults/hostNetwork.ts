import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Separate hosts on one machine: a network namespace per host, each wired by veth links into two
 * bridges of the root namespace, where the test process serves what the hosts reach (proxies to
 * PostgreSQL and RabbitMQ, the simulated market). Traffic goes only between those namespaces and
 * the root namespace's bridge addresses; nothing is routed further (no default route, no
 * forwarding).
 *
 * Two networks, so that a host can lose PostgreSQL and keep RabbitMQ: `service` (the broker's
 * proxy, the market, the API) and `database` (PostgreSQL's proxy). A cut is a link set down on the
 * root side: the host's packets are dropped without a word, as when a cable is pulled or a switch
 * dies (no reset, no ICMP), and TCP on both sides learns of it only through its own timeouts.
 *
 * Every name starts with `mos` and carries this process's pid (base 36), so a run that died without
 * tearing down is recognised later (its pid gone) and its namespaces and bridges removed.
 */

const RUN = process.pid.toString(36);
const NAMES = /^mos(?:h|b|v)-([0-9a-z]+)-/;

async function ip(...args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`ip ${args.join(' ')} failed: ${stderr || (error as Error).message}`, { cause: error });
  }
}

/** Removes the namespaces and bridges of runs whose process is gone (a run killed mid-way). */
export async function removeStaleNetworks(): Promise<string[]> {
  const stale = (name: string) => {
    const owner = NAMES.exec(name)?.[1];
    return owner !== undefined && owner !== RUN && !existsSync(`/proc/${parseInt(owner, 36)}`);
  };
  const removed: string[] = [];
  const namespaces = (await ip('netns', 'list')).split('\n').map((line) => line.split(' ')[0] ?? '');
  for (const ns of namespaces.filter(stale)) {
    // The service processes that run left in it (its test process was killed): a namespace lives
    // on, unnamed, while a process is in it.
    for (const pid of (await ip('netns', 'pids', ns)).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await ip('netns', 'delete', ns);
    removed.push(ns);
  }
  // A namespace's deletion takes its veth ends and so their peers; the bridges stay.
  const links = (await ip('-o', 'link', 'show'))
    .split('\n')
    .map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1] ?? '');
  for (const link of links.filter(stale)) {
    await ip('link', 'delete', link).catch(() => {});
    removed.push(link);
  }
  return removed;
}

/** Settings of a host's kernel, applied in its namespace (they are per network namespace). */
export interface HostKernel {
  /**
   * `net.ipv4.tcp_retries2`: how many retransmissions of unacknowledged data before TCP gives up
   * on a silent peer. Linux's 15 is about 15 minutes; 5 is about 13 s (RTO 200 ms, doubling).
   */
  readonly tcpRetries2?: number;
}

export interface TestHost {
  readonly name: string;
  /** Its network namespace. */
  readonly ns: string;
  /** Its address on the service network (where the API listens, on an api host). */
  readonly address: string;
  /** The command prefix that runs a program on this host (see startProcess's `wrapper`). */
  readonly wrapper: readonly string[];
  /** Pulls both of its links: it reaches nothing, and nothing reaches it. */
  cut(): Promise<void>;
  /** Pulls only its link to the database network: PostgreSQL is silent, RabbitMQ still answers. */
  cutDatabase(): Promise<void>;
  /** Puts both links back. */
  restore(): Promise<void>;
}

export interface HostNetwork {
  /** The root namespace's address on the service network: serve what the hosts reach there. */
  readonly serviceGateway: string;
  /** The root namespace's address on the database network: serve PostgreSQL's proxy there. */
  readonly databaseGateway: string;
  addHost(name: string): Promise<TestHost>;
  /** Deletes every namespace and bridge of this network (idempotent). */
  close(): Promise<void>;
}

/** A /24 for each network, 10.231.X and 10.232.X with the same X, not used on this machine yet. */
async function freeSubnets(): Promise<[string, string]> {
  const used = await ip('-o', '-4', 'addr', 'show');
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const x = Math.floor(Math.random() * 254) + 1;
    const subnets: [string, string] = [`10.231.${x}`, `10.232.${x}`];
    if (!subnets.some((s) => used.includes(` ${s}.`))) return subnets;
  }
  throw new Error('no free 10.231.X.0/24 and 10.232.X.0/24 pair for the test network');
}

/**
 * Makes the two bridges. Fails loudly (never skips) when namespaces or links cannot be made: this
 * test is the proof that the roles survive as separate hosts, and a proof that did not run must
 * not pass.
 */
export async function createHostNetwork(kernel: HostKernel = {}): Promise<HostNetwork> {
  await removeStaleNetworks();
  const [service, database] = await freeSubnets();
  const bridges = { service: `mosb-${RUN}-s`, database: `mosb-${RUN}-d` };
  const hosts: TestHost[] = [];
  const namespaces: string[] = [];

  const close = async () => {
    for (const ns of namespaces.splice(0)) await ip('netns', 'delete', ns).catch(() => {});
    for (const bridge of Object.values(bridges)) await ip('link', 'delete', bridge).catch(() => {});
  };

  try {
    for (const [bridge, subnet] of [
      [bridges.service, service],
      [bridges.database, database],
    ] as const) {
      await ip('link', 'add', bridge, 'type', 'bridge');
      await ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
      await ip('link', 'set', bridge, 'up');
    }
  } catch (error) {
    await close();
    throw error;
  }

  async function addHost(name: string): Promise<TestHost> {
    const index = hosts.length + 1;
    if (index > 200) throw new Error('too many hosts');
    const ns = `mosh-${RUN}-${name}`;
    await ip('netns', 'add', ns);
    namespaces.push(ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    // Root-side names: mosv-<run>-<index><s|d>, at most 15 characters.
    const rootEnd = (net: 's' | 'd') => `mosv-${RUN}-${index.toString(36)}${net}`;
    for (const [net, inside, bridge, subnet] of [
      ['s', 'eth0', bridges.service, service],
      ['d', 'db0', bridges.database, database],
    ] as const) {
      await ip('link', 'add', rootEnd(net), 'type', 'veth', 'peer', 'name', inside, 'netns', ns);
      await ip('link', 'set', rootEnd(net), 'master', bridge, 'up');
      await ip('-n', ns, 'addr', 'add', `${subnet}.${10 + index}/24`, 'dev', inside);
      await ip('-n', ns, 'link', 'set', inside, 'up');
    }
    if (kernel.tcpRetries2 !== undefined) {
      const value = String(Math.trunc(kernel.tcpRetries2));
      await ip('netns', 'exec', ns, 'sh', '-c', `echo ${value} > /proc/sys/net/ipv4/tcp_retries2`);
    }
    const links = (state: 'up' | 'down', nets: readonly ('s' | 'd')[]) =>
      Promise.all(nets.map((net) => ip('link', 'set', rootEnd(net), state))).then(() => undefined);
    const host: TestHost = {
      name,
      ns,
      address: `${service}.${10 + index}`,
      wrapper: ['ip', 'netns', 'exec', ns],
      cut: () => links('down', ['s', 'd']),
      cutDatabase: () => links('down', ['d']),
      restore: () => links('up', ['s', 'd']),
    };
    hosts.push(host);
    return host;
  }

  return {
    serviceGateway: `${service}.1`,
    databaseGateway: `${database}.1`,
    addHost,
    close,
  };
}
