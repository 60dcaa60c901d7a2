-- A table shaped like a real orders table, for trying pacer on a scratch database:
--   psql "$URL" -v rows=1000000 -f demo/seed.sql
\if :{?rows}
\else
\set rows 1000000
\endif
DROP TABLE IF EXISTS public.orders;
-- Forget an earlier demo migration of this table, so the demo can run again.
DO $$ BEGIN
  IF to_regclass('pacer.migrations') IS NOT NULL THEN
    DELETE FROM pacer.migrations WHERE job = 'public.orders.amount';
  END IF;
END $$;
CREATE TABLE public.orders (
    id           bigserial PRIMARY KEY,
    customer_id  bigint      NOT NULL,
    amount_cents bigint      NOT NULL,
    status       text        NOT NULL DEFAULT 'new',
    note         text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.orders (customer_id, amount_cents, status, note, created_at)
SELECT (g::bigint * 7919) % 50000,
       (g::bigint * 104729) % 1000000,
       (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + g % 4],
       'order ' || g,
       now() - (g || ' seconds')::interval
FROM generate_series(1, :rows) AS g;
CREATE INDEX orders_customer_idx ON public.orders (customer_id);
ANALYZE public.orders;
