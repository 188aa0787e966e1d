import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes the next numbered SQL migration from src/db/tables.ts.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/tables.ts',
  out: './migrations',
});
