-- A subscriber role beside the writer, projector and analyst.
--
-- crashlog.setup_roles (012) is replaced: it also creates <prefix>_subscriber, which reads
-- crashlog.events (and schema_migrations, to check the schema at connect) and selects,
-- inserts and updates crashlog.subscription_checkpoints (013), so a consumer of
-- log.subscribe(...) needs no other right. Like 012, this changes no grant by itself: an
-- administrator runs `crashlog roles` again after it.
--
-- Dropping a subscription (`crashlog subscriptions --drop`) deletes its row: an
-- administrator's or the projector's task (the projector owns the table after `crashlog roles`).

CREATE OR REPLACE FUNCTION crashlog.setup_roles(prefix text) RETURNS TABLE (role name, purpose text)
LANGUAGE plpgsql AS $$
DECLARE
    writer    name := prefix || '_writer';
    projector name := prefix || '_projector';
    analyst   name := prefix || '_analyst';
    subscriber name := prefix || '_subscriber';
    log_tables CONSTANT text[] := ARRAY['events', 'rejected_events', 'schema_migrations'];
    writer_columns CONSTANT text[] := ARRAY['event_id', 'event_type', 'schema_version',
        'bot_id', 'session_id', 'occurred_at', 'payload'];
    member name;
    tbl record;
BEGIN
    IF prefix !~ '^[a-z_][a-z0-9_]{0,40}$' THEN
        RAISE EXCEPTION 'role prefix % must be lowercase letters, digits and _ (at most 41)',
            quote_literal(prefix) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH member IN ARRAY ARRAY[writer, projector, analyst, subscriber] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = member) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', member);
        END IF;
        EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), member);
        EXECUTE format('GRANT USAGE ON SCHEMA crashlog TO %I', member);
    END LOOP;

    -- The writer: append only, and only the columns a writer supplies (COPY with a column
    -- list honours column grants; the retry path needs a temporary table). position,
    -- recorded_at and tx_id are the server's: a writer choosing tx_id could put a row below
    -- the projections' checkpoints, seen by a rebuild but never live. REVOKE first: a
    -- database set up before 012 granted INSERT on the whole table.
    EXECUTE format('REVOKE INSERT ON crashlog.events FROM %I', writer);
    EXECUTE format('GRANT INSERT (%s) ON crashlog.events TO %I',
                   array_to_string(writer_columns, ', '), writer);
    EXECUTE format('GRANT INSERT ON crashlog.rejected_events TO %I', writer);
    EXECUTE format('GRANT SELECT (event_id) ON crashlog.events TO %I', writer);
    -- connect() checks for pending migrations before it writes.
    EXECUTE format('GRANT SELECT ON crashlog.schema_migrations TO %I', writer);

    -- The projector: reads the log, owns and writes the read tables, creates their shadows.
    EXECUTE format('GRANT CREATE ON SCHEMA crashlog TO %I', projector);
    EXECUTE format('GRANT SELECT ON crashlog.events, crashlog.schema_migrations TO %I', projector);
    FOR tbl IN
        SELECT c.relname, pg_get_userbyid(c.relowner) AS owner
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'crashlog' AND c.relkind IN ('r', 'p') AND c.relname <> ALL (log_tables)
    LOOP
        IF tbl.owner <> projector THEN
            EXECUTE format('ALTER TABLE crashlog.%I OWNER TO %I', tbl.relname, projector);
        END IF;
    END LOOP;

    -- The subscriber: reads the log and moves its subscriptions' checkpoints
    -- (crashlog/subscriptions.py); it reads no read table and writes nothing else.
    EXECUTE format('GRANT SELECT ON crashlog.events, crashlog.schema_migrations TO %I', subscriber);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON crashlog.subscription_checkpoints TO %I',
                   subscriber);

    -- The analyst: reads every table, now and those a projector creates later (rebuilt shadows).
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA crashlog TO %I', analyst);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA crashlog'
                   ' GRANT SELECT ON TABLES TO %I', projector, analyst);

    RETURN QUERY VALUES
        (writer, 'INSERT into crashlog.events (the columns a writer supplies) and crashlog.rejected_events only'),
        (projector, 'reads crashlog.events, owns and writes the read tables'),
        (analyst, 'SELECT on every crashlog table, nothing else'),
        (subscriber, 'reads crashlog.events, keeps its subscriptions'' checkpoints');
END;
$$;

-- Creating roles is for administrators; nobody else needs to call this.
REVOKE EXECUTE ON FUNCTION crashlog.setup_roles(text) FROM PUBLIC;
