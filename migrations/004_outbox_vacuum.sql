-- The outbox is a queue: every row is updated once (published) soon after it is inserted. Dead
-- rows and their index entries pile up at the low end of the unpublished-rows index that every
-- claim walks, so vacuum it after every few thousand changes rather than after 20 % of the table.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
