// The four business endpoints. Each call goes: count on receipt (QPS) -> latency ->
// faults (reset, hang, 5xx, busy; drawn independently in that order) -> token ->
// validate (a refusal is recorded as a contract violation) -> apply (test mode:
// whitelist only, nothing deducted) -> for a decr that applied, maybe lose the answer.
// A change of remaining times sends the order webhook when a URL is set (fire and
// forget): an insert is order_event 1 (paid), a delete 5 (cancelled), and a deduction
// that leaves 0 is 4 (user confirmed: the simulator's assumption of when the
// platform calls a used-up order done).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { jsonBody, type ParsedBody } from './body.js';
import type { OrderTarget, SimulatorCore } from './core.js';
import { CODES, envelope } from './envelope.js';
import {
  type Checked,
  checkDecr,
  checkDeletePurchase,
  checkInsertPurchase,
  checkPurchaseListQuery,
} from './validate.js';
import { ORDER_EVENTS } from './webhooks.js';

export const PATHS = {
  decr: '/market/service/user/remaintimes/decr/',
  insertPurchase: '/market/service/user/insert/purchase/info/',
  deletePurchase: '/market/service/user/delete/purchase/info/',
  purchaseList: '/market/service/user/purchase/list/',
} as const;

const UNAVAILABLE_HTML = '<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>';

/** What a route's logic decided; `applied` marks a decr that deducted, `invalid` a request off the contract. */
interface Outcome {
  code: number;
  fields?: Record<string, unknown>;
  detail?: string;
  applied?: boolean;
  invalid?: boolean;
}

type Logic = (req: FastifyRequest) => Outcome;

/** Destroys the connection without an answer; Fastify must not touch the reply afterwards. */
function dropConnection(req: FastifyRequest, reply: FastifyReply): void {
  reply.hijack();
  req.raw.socket.destroy();
}

function withParams<T>(checked: Checked<T>, apply: (value: T) => Outcome): Outcome {
  if (!checked.ok) return { code: CODES.INVALID_PARAMETER, detail: checked.problem, invalid: true };
  return apply(checked.value);
}

function fromBody<T>(parsed: ParsedBody, check: (b: unknown) => Checked<T>): Checked<T> {
  return parsed.ok ? check(parsed.value) : parsed;
}

function target(p: { open_id: string; service_id: string; service_mode_id: string }): OrderTarget {
  return { openId: p.open_id, serviceId: p.service_id, serviceModeId: p.service_mode_id };
}

export function registerBusinessRoutes(app: FastifyInstance, core: SimulatorCore): void {
  const route = (method: 'GET' | 'POST', path: string, logic: Logic, losable = false) => {
    app.route({
      method,
      url: path,
      handler: async (req, reply) => {
        const admitted = core.admit(path);
        const delay = core.latency();
        if (delay > 0) await core.sleep(delay);
        if (!admitted) return envelope(CODES.TOO_FREQUENT);

        const f = core.faults;
        const c = core.calls;
        if (f.resetRate > 0 && Math.random() < f.resetRate) {
          c.resets++;
          return dropConnection(req, reply);
        }
        if (f.hangRate > 0 && Math.random() < f.hangRate) {
          c.hangs++;
          reply.hijack();
          const socket = req.raw.socket;
          const cancel = core.later(f.hangMs, () => socket.destroy());
          socket.once('close', cancel);
          return;
        }
        if (f.http5xxRate > 0 && Math.random() < f.http5xxRate) {
          c.http5xx++;
          return reply.code(503).type('text/html; charset=utf-8').send(UNAVAILABLE_HTML);
        }
        if (f.busyRate > 0 && Math.random() < f.busyRate) {
          c.busy++;
          return envelope(CODES.SYSTEM_BUSY);
        }

        const token = req.headers['access-token'];
        const auth = core.tokens.check(typeof token === 'string' ? token : undefined);
        if (auth !== 'ok') {
          c.tokenRefused++;
          return envelope(auth === 'wrong' ? CODES.TOKEN_WRONG : CODES.TOKEN_EXPIRED);
        }

        const out = logic(req);
        if (out.invalid) core.recordViolation(path, out.detail ?? 'invalid request');
        if (losable && out.applied) {
          // Read the rate now: the deduction is applied, only the answer is lost.
          const rate = core.faults.appliedButLostRate;
          if (rate > 0 && Math.random() < rate) {
            c.appliedButLost++;
            return dropConnection(req, reply);
          }
        }
        return envelope(out.code, out.fields, out.detail);
      },
    });
  };

  route(
    'POST',
    PATHS.decr,
    (req) =>
      withParams(fromBody(jsonBody(req), checkDecr), (p) => {
        if (p.is_test_env) {
          // Test mode: success for a whitelisted open_id, and nothing deducted or remembered.
          if (!core.isTestUser(p.open_id)) return { code: CODES.TEST_USER_NOT_WHITELISTED };
          core.recordTestCall({
            method: 'decr',
            openId: p.open_id,
            serviceId: p.service_id,
            serviceModeId: p.service_mode_id,
            count: p.count,
            outTradeNo: p.out_trade_no,
          });
          return { code: CODES.SUCCESS };
        }
        const r = core.store.decr(p);
        if (r.replay) core.calls.replays++;
        if (r.again) core.calls.deductedAgain++;
        if (r.applied && r.remaining === 0) core.notifyOrder(target(p), ORDER_EVENTS.USER_CONFIRMED);
        return { code: r.code, applied: r.applied };
      }),
    true,
  );
  route('POST', PATHS.insertPurchase, (req) =>
    withParams(fromBody(jsonBody(req), checkInsertPurchase), (p) => {
      const r = core.store.insertPurchase(p);
      if (r.orderId) core.notifyOrder(target(p), ORDER_EVENTS.PAID, r.orderId);
      return { code: r.code };
    }),
  );
  route('POST', PATHS.deletePurchase, (req) =>
    withParams(fromBody(jsonBody(req), checkDeletePurchase), (p) => {
      const r = core.store.deletePurchase(p);
      if (r.orderId) core.notifyOrder(target(p), ORDER_EVENTS.CANCELLED, r.orderId);
      return { code: r.code };
    }),
  );
  route('GET', PATHS.purchaseList, (req) =>
    withParams(checkPurchaseListQuery(req.query), (q) => {
      if (q.is_test_env) {
        if (!core.isTestUser(q.open_id)) return { code: CODES.TEST_USER_NOT_WHITELISTED };
        core.recordTestCall({ method: 'purchaseList', openId: q.open_id, serviceId: q.service_id });
      }
      return {
        code: CODES.SUCCESS,
        fields: { purchase_info_list: core.store.purchaseList(q.open_id, q.service_id, q.is_test_env) },
      };
    }),
  );
}
