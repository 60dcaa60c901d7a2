-- A table shaped like a real orders table, for trying pacer on a scratch database:
--   psql "$URL" -v rows=1000000 -f demo/seed.sql
-- (`pacer demo` seeds its own throwaway server from demo/orders-table.sql, which this includes.)
\if :{?rows}
\else
\set rows 1000000
\endif
SET pacer_demo.rows = :'rows';
\ir orders-table.sql
