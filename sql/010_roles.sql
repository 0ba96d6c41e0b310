-- Least-privilege roles: a writer, a projector and a read-only analyst.
--
-- This migration only defines the function; roles are created when an administrator runs
-- `crashlog roles` (crashlog/roles.py), which calls crashlog.setup_roles(prefix). Roles are
-- cluster-wide and creating them needs CREATEROLE, which a migration must not require.
--
-- The three roles are NOLOGIN groups; people and bots log in as members:
--   CREATE ROLE bot_7 LOGIN PASSWORD '...' IN ROLE crashlog_writer;
--
-- writer    appends to the log: INSERT on events and rejected_events, nothing else. It may
--           read crashlog.events.event_id only, because INSERT ... ON CONFLICT (event_id) DO
--           NOTHING (the writer's retry path) needs SELECT on its conflict column; it cannot
--           read payloads nor any read table, and cannot UPDATE, DELETE or TRUNCATE.
-- projector reads the log and owns the read tables (a rebuild drops a table and renames its
--           shadow into place, which only an owner may do); it cannot append to the log.
-- analyst   reads everything, changes nothing.
--
-- Safe to run again (after new migrations added tables, say): it only adds what is missing.

CREATE FUNCTION crashlog.setup_roles(prefix text) RETURNS TABLE (role name, purpose text)
LANGUAGE plpgsql AS $$
DECLARE
    writer    name := prefix || '_writer';
    projector name := prefix || '_projector';
    analyst   name := prefix || '_analyst';
    log_tables CONSTANT text[] := ARRAY['events', 'rejected_events', 'schema_migrations'];
    member name;
    tbl record;
BEGIN
    IF prefix !~ '^[a-z_][a-z0-9_]{0,40}$' THEN
        RAISE EXCEPTION 'role prefix % must be lowercase letters, digits and _ (at most 41)',
            quote_literal(prefix) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH member IN ARRAY ARRAY[writer, projector, analyst] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = member) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', member);
        END IF;
        EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), member);
        EXECUTE format('GRANT USAGE ON SCHEMA crashlog TO %I', member);
    END LOOP;

    -- The writer: append only (COPY needs INSERT; the retry path a temporary table).
    EXECUTE format('GRANT INSERT ON crashlog.events, crashlog.rejected_events TO %I', writer);
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

    -- The analyst: reads every table, now and those a projector creates later (rebuilt shadows).
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA crashlog TO %I', analyst);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA crashlog'
                   ' GRANT SELECT ON TABLES TO %I', projector, analyst);

    RETURN QUERY VALUES
        (writer, 'INSERT into crashlog.events and crashlog.rejected_events only'),
        (projector, 'reads crashlog.events, owns and writes the read tables'),
        (analyst, 'SELECT on every crashlog table, nothing else');
END;
$$;

-- Creating roles is for administrators; nobody else needs to call this.
REVOKE EXECUTE ON FUNCTION crashlog.setup_roles(text) FROM PUBLIC;
