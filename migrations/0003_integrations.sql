ALTER TABLE "task_history" ADD COLUMN "event" text DEFAULT 'state' NOT NULL;--> statement-breakpoint
ALTER TABLE "task_history" ADD COLUMN "reason" text;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "cancelled_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "cancel_reason" text;--> statement-breakpoint
UPDATE "task_history" AS h SET "event" = 'created'
WHERE h."task_id" IS NOT NULL AND h."id" = (SELECT min(f."id") FROM "task_history" AS f WHERE f."task_id" = h."task_id");
