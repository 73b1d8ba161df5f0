// The dashboard's addresses: every view has a hash route, so it opens directly
// (after sign-in, when needed) and the browser's back and forward buttons walk the
// views an operator opened. #/ the overview, #/dead its dead letters, #/batches/:id
// a batch's details, #/users/:openId a user lookup, #/search/:q a search's results,
// #/webhooks the Webhooks page (#webhooks, its first address, still works).

export type Route =
  | { view: 'overview' }
  | { view: 'dead' }
  | { view: 'webhooks' }
  | { view: 'batch'; id: string }
  | { view: 'user'; openId: string }
  | { view: 'search'; q: string };

/** A path segment as written; a malformed escape is taken literally. */
function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The route an address's hash names; anything unknown is the overview. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#\/?/, '');
  const slash = path.indexOf('/');
  const head = slash < 0 ? path : path.slice(0, slash);
  // Everything after the first slash: an openId or a query may hold one (escaped or not).
  const rest = slash < 0 ? '' : decode(path.slice(slash + 1));
  switch (head) {
    case 'dead':
      return { view: 'dead' };
    case 'webhooks':
      return { view: 'webhooks' };
    case 'batches':
      return rest ? { view: 'batch', id: rest } : { view: 'overview' };
    case 'users':
      return rest ? { view: 'user', openId: rest } : { view: 'overview' };
    case 'search':
      return rest ? { view: 'search', q: rest } : { view: 'overview' };
    default:
      return { view: 'overview' };
  }
}

/** The hash of a route (what parseRoute reads back as the same route). */
export function routeHash(r: Route): string {
  switch (r.view) {
    case 'overview':
      return '#/';
    case 'dead':
      return '#/dead';
    case 'webhooks':
      return '#/webhooks';
    case 'batch':
      return `#/batches/${encodeURIComponent(r.id)}`;
    case 'user':
      return `#/users/${encodeURIComponent(r.openId)}`;
    case 'search':
      return `#/search/${encodeURIComponent(r.q)}`;
  }
}

/** Same view, same subject. */
export const sameRoute = (a: Route, b: Route) => routeHash(a) === routeHash(b);

export interface Router {
  /** The route the address names now. */
  current(): Route;
  /** Opens a route as a new history entry (back returns here); the same route again is shown again. */
  go(r: Route): void;
  /** Opens a route in place of the current entry (a search that opened its one result). */
  replace(r: Route): void;
}

/** Calls `show` on every change of the address (back and forward too), and for go/replace. */
export function createRouter(show: (r: Route) => void): Router {
  const current = () => parseRoute(window.location.hash);
  window.addEventListener('hashchange', () => show(current()));
  return {
    current,
    go(r) {
      const hash = routeHash(r);
      // Setting the hash it already has makes no history entry and no hashchange.
      if (window.location.hash === hash) show(r);
      else window.location.hash = hash;
    },
    replace(r) {
      window.history.replaceState(window.history.state, '', routeHash(r));
      show(r);
    },
  };
}
