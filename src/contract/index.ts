// Everything that crosses a wire. No node imports: the web app imports this too.
export * from './common.js';
export * from './health.js';
export * from './tasks.js';
export * from './webhooks.js';
export * from './people.js';
export * from './admin.js';
export * from './notifications.js';
