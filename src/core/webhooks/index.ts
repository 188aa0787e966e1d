export * from './signature.js';
export * from './webhooks.js';
export * from './webhooks.service.js';
export * from './webhook-keys.service.js';
export * from './deliveries.service.js';
