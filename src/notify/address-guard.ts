// Where the meter's webhooks may go: a guard against an endpoint URL (or a DNS
// answer) pointing into the operator's own network (server-side request forgery).
// Checked on the address a request actually connects to, so a name that resolves
// to a public address when the endpoint is made and to 10.0.0.5 later is refused
// then. Node's net.BlockList holds the ranges; no library fits better.
//
// - NOTIFY_ALLOWED_HOSTS unset: public addresses only (no loopback, private,
//   link-local such as 169.254.169.254, shared, documentation or multicast ranges).
// - NOTIFY_ALLOWED_HOSTS set (addresses, CIDR ranges, host names): only addresses
//   in it, private ones included (the operator named them); a host name stands for
//   the addresses it resolves to.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { promisify } from 'node:util';

const NOT_PUBLIC_V4 = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const;
const NOT_PUBLIC_V6 = [
  ['::', 96], // unspecified, loopback, IPv4-compatible (::127.0.0.1)
  ['::1', 128],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10], // site-local (deprecated, still private)
  ['ff00::', 8],
] as const;

const notPublic = new BlockList();
for (const [a, p] of NOT_PUBLIC_V4) notPublic.addSubnet(a, p, 'ipv4');
for (const [a, p] of NOT_PUBLIC_V6) notPublic.addSubnet(a, p, 'ipv6');

/** A request to a destination the guard refuses. */
export class DestinationRefusedError extends Error {
  override readonly name = 'DestinationRefusedError';
}

const lookupAll = promisify(dnsLookup);

const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/** ::ffff:10.0.0.1 is 10.0.0.1: judged as IPv4. */
function normalize(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1]!, family: 'ipv4' };
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

export class AddressGuard {
  private readonly listed = new BlockList();
  private readonly names: string[] = [];
  private readonly restricted: boolean;

  /**
   * `allowed`: NOTIFY_ALLOWED_HOSTS's entries (addresses, CIDR ranges, host names);
   * empty or undefined: public addresses only. Throws on an entry that is none of these.
   */
  constructor(allowed: readonly string[] = []) {
    this.restricted = allowed.length > 0;
    for (const entry of allowed) {
      const [base, bits, extra] = entry.split('/') as [string, string | undefined, string | undefined];
      const raw = base.replace(/^\[(.*)\]$/, '$1');
      if (isIP(raw)) {
        const { address, family } = normalize(raw);
        // A range over an IPv4-mapped address is written as IPv4 (10.0.0.0/8), not ::ffff:10.0.0.0/104.
        const max = family === 'ipv4' ? 32 : 128;
        if (bits === undefined && extra === undefined) this.listed.addAddress(address, family);
        else if (
          /^\d{1,3}$/.test(bits ?? '') &&
          extra === undefined &&
          Number(bits) <= max &&
          address === raw
        )
          this.listed.addSubnet(address, Number(bits), family);
        else throw new Error(`not a CIDR range: ${entry}`);
      } else if (bits === undefined && HOST_NAME.test(entry)) this.names.push(entry.toLowerCase());
      else throw new Error(`not an IP address, CIDR range or host name: ${entry}`);
    }
  }

  /** Why this address may not be connected to, or undefined when it may. */
  async refusal(rawAddress: string): Promise<string | undefined> {
    const { address, family } = normalize(rawAddress);
    if (!this.restricted)
      return notPublic.check(address, family) ? `${rawAddress} is not a public address` : undefined;
    if (this.listed.check(address, family)) return undefined;
    for (const name of this.names) {
      const resolved = await lookupAll(name, { all: true }).catch(() => [] as LookupAddress[]);
      if (resolved.some((r) => normalize(r.address).address === address)) return undefined;
    }
    return `${rawAddress} is not in NOTIFY_ALLOWED_HOSTS`;
  }

  /**
   * A `lookup` for net.connect / tls.connect: resolves as usual, then refuses the
   * connection unless every address is allowed (so no answer can slip through).
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 4);
      const list = addresses as LookupAddress[];
      void (async () => {
        for (const a of list) {
          const why = await this.refusal(a.address);
          if (why) return callback(new DestinationRefusedError(`${hostname}: ${why}`), '', 4);
        }
        if ((options as { all?: boolean }).all)
          return (callback as (e: null, a: LookupAddress[]) => void)(null, list);
        const first = list[0];
        if (!first) return callback(new DestinationRefusedError(`${hostname}: no address`), '', 4);
        callback(null, first.address, first.family);
      })();
    });
  };

  /** Refuses a URL that is not http(s), or whose host is an address the guard refuses (names are checked at connect). */
  async checkUrl(url: string): Promise<void> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new DestinationRefusedError(`not a URL: ${url.slice(0, 200)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new DestinationRefusedError(`only http and https URLs are allowed, not ${u.protocol}`);
    if (u.username || u.password) throw new DestinationRefusedError('a URL with credentials is not allowed');
    const host = u.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      const why = await this.refusal(host);
      if (why) throw new DestinationRefusedError(why);
    }
  }
}
