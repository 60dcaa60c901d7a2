-- The demo table: `orders`, shaped like a real orders table, with a given number of rows.
-- Plain SQL (no psql meta-commands), so that `pacer demo` runs this very file. The row count
-- comes from the setting `pacer_demo.rows` (default 1,000,000): demo/seed.sql sets it from
-- psql's `-v rows=N`, `pacer demo` from `--rows`.
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
FROM generate_series(1, coalesce(nullif(current_setting('pacer_demo.rows', true), '')::bigint,
                                 1000000)) AS g;
CREATE INDEX orders_customer_idx ON public.orders (customer_id);
ANALYZE public.orders;
