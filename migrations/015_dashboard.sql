-- The dashboard (/ui, src/http/ui.ts): every user's orders newest first, keyset-paged on
-- (created_at, order_id), with and without a status filter, for GET /admin/orders. Without these
-- a page of the newest 50 sorts every order (50,000 rows: a sort on each visit). The live feed
-- reads orders_view_by_update (migration 013) and needs nothing new.
CREATE INDEX orders_view_by_time ON orders_view (created_at DESC, order_id DESC);
CREATE INDEX orders_view_by_status_time ON orders_view (status, created_at DESC, order_id DESC);
