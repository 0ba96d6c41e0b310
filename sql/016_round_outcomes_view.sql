-- crashlog.round_outcomes becomes a view over crashlog.rounds.
--
-- It was a second copy of columns rounds already holds (one row per RoundSettled in both),
-- written by its own projection: the rebuild wrote every settled round twice. As a view it
-- has the same columns, in the same order, with the same types and the same rows, and costs
-- nothing to keep. The round_outcomes projection is gone (its checkpoint row with it); the
-- name still rebuilds rounds (`crashlog project --rebuild round_outcomes`). A rebuild of
-- rounds recreates this view over the new table in its swap (CREATE OR REPLACE VIEW: the
-- view keeps its owner and grants, and views of users over it stay valid).
--
-- One difference for malformed rows written by something other than the SDK: a settled
-- round that rounds cannot read (a bad balance or metadata) is now absent here too, where the
-- old projection, reading fewer fields, kept it. Such rows are in crashlog.projection_errors.
--
-- The view gets the table's owner and its SELECT grants. crashlog.setup_roles (014) is
-- replaced so that `crashlog roles` also gives this view to the projector, who rebuilds rounds.

DO $$
DECLARE
    old_owner name;
    grant_row record;
BEGIN
    SELECT pg_get_userbyid(c.relowner) INTO old_owner FROM pg_class c
    WHERE c.oid = 'crashlog.round_outcomes'::regclass;
    CREATE TEMPORARY TABLE round_outcomes_grants ON COMMIT DROP AS
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = 'crashlog.round_outcomes'::regclass AND a.privilege_type = 'SELECT'
          AND a.grantee <> c.relowner;
    DROP TABLE crashlog.round_outcomes;
    CREATE VIEW crashlog.round_outcomes AS
        SELECT event_id, position, bot_id, session_id, game, platform, game_round_id,
               round_number, strategy_name, outcome, stake, cashout_multiplier,
               crash_multiplier, profit_loss, occurred_at
        FROM crashlog.rounds;
    IF old_owner <> current_user THEN
        EXECUTE format('ALTER VIEW crashlog.round_outcomes OWNER TO %I', old_owner);
    END IF;
    FOR grant_row IN SELECT grantee FROM round_outcomes_grants LOOP
        EXECUTE format('GRANT SELECT ON crashlog.round_outcomes TO %s', grant_row.grantee);
    END LOOP;
END;
$$;

COMMENT ON VIEW crashlog.round_outcomes IS
    'The narrow record of each settled round''s outcome: columns of crashlog.rounds (016).';

DELETE FROM crashlog.projection_checkpoints WHERE name = 'round_outcomes';

CREATE OR REPLACE FUNCTION crashlog.setup_roles(prefix text) RETURNS TABLE (role name, purpose text)
LANGUAGE plpgsql AS $$
DECLARE
    writer    name := prefix || '_writer';
    projector name := prefix || '_projector';
    analyst   name := prefix || '_analyst';
    subscriber name := prefix || '_subscriber';
    log_tables CONSTANT text[] := ARRAY['events', 'rejected_events', 'schema_migrations'];
    -- crashlog's own views over read tables: the projector recreates them in a rebuild.
    own_views CONSTANT text[] := ARRAY['round_outcomes'];
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
        WHERE n.nspname = 'crashlog' AND c.relname <> ALL (log_tables)
          AND (c.relkind IN ('r', 'p') OR (c.relkind = 'v' AND c.relname = ANY (own_views)))
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
