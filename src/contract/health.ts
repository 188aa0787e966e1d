import { z } from 'zod';

export const HealthResponse = z.object({
  status: z.literal('ok'),
  client_ip: z.string(),
  health_url: z.string(),
  /** The absolute URL as the server believes the client sees it (scheme and host after proxies). */
  health_url_ext: z.string(),
  version: z.string(),
});
export type HealthResponse = z.infer<typeof HealthResponse>;
