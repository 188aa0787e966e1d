import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DeliveryResponse, ListDeliveriesQuery, ListDeliveriesResponse, Problem, RedeliverResponse, RedeliverSinceBody } from '../../contract/index.js';
import type { Database } from '../../db/index.js';
import * as webhooks from '../../core/webhooks/index.js';
import { actorOf, principalOf } from '../auth.js';

const IdParams = z.object({ id: z.coerce.number().int().positive() });
const errors = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 501: Problem };

/** The webhook delivery log: list, inspect, redeliver. */
export function deliveryRoutes(database: Database, hooks: webhooks.Webhooks): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/api/v1/deliveries/',
      { config: { auth: 'admin' }, schema: { querystring: ListDeliveriesQuery, response: { 200: ListDeliveriesResponse, ...errors } } },
      async (req) => webhooks.listDeliveries(database, principalOf(req), req.query),
    );

    app.get(
      '/api/v1/deliveries/:id',
      { config: { auth: 'admin' }, schema: { params: IdParams, response: { 200: DeliveryResponse, ...errors } } },
      async (req) => webhooks.getDelivery(database, principalOf(req), req.params.id),
    );

    app.post(
      '/api/v1/deliveries/:id/redeliver',
      { config: { auth: 'admin' }, schema: { params: IdParams, response: { 200: DeliveryResponse, ...errors } } },
      async (req) => {
        const result = await webhooks.redeliver(database, principalOf(req), req.params.id, actorOf(req));
        hooks.wake();
        return result;
      },
    );

    app.post(
      '/api/v1/deliveries/redeliver',
      { config: { auth: 'admin' }, schema: { body: RedeliverSinceBody, response: { 200: RedeliverResponse, ...errors } } },
      async (req) => {
        const redelivered = await webhooks.redeliverFailedSince(database, principalOf(req), new Date(req.body.since), req.body.schema, actorOf(req));
        hooks.wake();
        return { redelivered };
      },
    );
  };
}
