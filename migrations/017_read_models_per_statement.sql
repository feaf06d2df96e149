-- The read models' trigger fires once per append instead of once per event, and an order's two
-- steps stored together are applied as one update of its row instead of two. Each order's row
-- took four updates (PriceQuoted, SwapExecuting, SwapExecuted, OrderCompleted), every one a new
-- row version with an entry in each of orders_view's indexes; about half of an append's time was
-- this trigger. The saga stores PriceQuoted with SwapExecuting and SwapExecuted with
-- OrderCompleted in one append, and what a reader sees of either pair is the state after it (the
-- transaction commits both or neither), so each pair is one update with the second event's
-- version. Any other event goes through project_event as before: the rows end the same.
--
-- Events apply per aggregate in version order (each read-model row is one aggregate's, and no
-- event touches another aggregate's row), so the new rows are taken by aggregate and version.

-- PriceQuoted then SwapExecuting of one order (versions v, v + 1), as one update.
CREATE FUNCTION project_quote_and_swap(q events, s events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE orders_view
    SET status = 'processing', quoted_price = read_model_decimal(q.event_data->>'price'),
        quoted_to_amount = read_model_decimal(q.event_data->>'to_amount'),
        position_id = read_model_uuid(s.event_data->>'position_id'),
        updated_at = date_trunc('milliseconds', s.created_at), version = s.version
    WHERE order_id = q.aggregate_id AND version = q.version - 1;
END
$$;

-- SwapExecuted then OrderCompleted of one order (versions v, v + 1), as one update: OrderCompleted
-- sets, from its own data, every column SwapExecuted sets, so the row ends as OrderCompleted alone
-- would leave it, taken from the version before SwapExecuted.
CREATE FUNCTION project_swap_and_completion(x events, c events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE orders_view
    SET status = 'completed', executed_price = read_model_decimal(c.event_data->>'executed_price'),
        to_amount = read_model_decimal(c.event_data->>'to_amount'), tx_hash = c.event_data->>'tx_hash',
        position_id = read_model_uuid(c.event_data->>'position_id'),
        updated_at = date_trunc('milliseconds', c.created_at), version = c.version
    WHERE order_id = x.aggregate_id AND version = x.version - 1;
END
$$;

CREATE FUNCTION project_read_models_of_append() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    e       events;
    pending events;
BEGIN
    FOR e IN SELECT * FROM appended ORDER BY aggregate_id, version LOOP
        IF pending.event_id IS NOT NULL AND pending.aggregate_id = e.aggregate_id
           AND e.version = pending.version + 1 THEN
            IF pending.event_type = 'PriceQuoted' AND e.event_type = 'SwapExecuting' THEN
                PERFORM project_quote_and_swap(pending, e);
                pending := NULL;
                CONTINUE;
            END IF;
            IF pending.event_type = 'SwapExecuted' AND e.event_type = 'OrderCompleted' THEN
                PERFORM project_swap_and_completion(pending, e);
                pending := NULL;
                CONTINUE;
            END IF;
        END IF;
        IF pending.event_id IS NOT NULL THEN
            PERFORM project_event(pending);
        END IF;
        pending := e;
    END LOOP;
    IF pending.event_id IS NOT NULL THEN
        PERFORM project_event(pending);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER events_project_read_models ON events;
CREATE TRIGGER events_project_read_models
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT
    EXECUTE FUNCTION project_read_models_of_append();

DROP FUNCTION project_read_models();
