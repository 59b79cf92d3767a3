-- Errand schema v10 (PostgreSQL): errand_enqueue(), the job insert any client can run inside
-- its own transaction (psql, psycopg, SQLAlchemy, JDBC, ...). The job exists, and workers are
-- woken, exactly when that transaction commits.
--
--   SELECT * FROM errand_enqueue('send_email', '{"to": "a@example.com"}', queue => 'email');
--    id | inserted
--   ----+----------
--    42 | t
--
-- Signature (every parameter after `kind` is optional; NULL means "not given"):
--   errand_enqueue(kind text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
--                  priority integer DEFAULT 0, run_at timestamptz, delay interval,
--                  max_attempts integer DEFAULT 4, unique_key text, reference_type text,
--                  reference_id text, timeout interval)
--     RETURNS (id bigint, inserted boolean)   -- one row
--
-- The checks are errand-core's (`NewJob::validate`, crates/errand-core/src/validate.rs and
-- storable.rs), in the same order and with the same messages, so a job refused by the library
-- is refused here and one accepted is stored alike; a test runs the same hostile inputs
-- through both. `delay` and `timeout` are intervals here where the library takes
-- milliseconds, so their messages name `delay` and `timeout`. A refusal raises SQLSTATE 22023
-- (invalid_parameter_value) with the message `invalid job: `FIELD` PROBLEM` and the field in
-- the error's COLUMN; nothing is written. NUL characters never reach these checks: PostgreSQL
-- itself refuses them in text and jsonb. The args size limit is errand-core's default,
-- 1 MiB of compact JSON (a deployment's `[limits] max_args_bytes` lives in its processes,
-- which do not write here).
--
-- Unique keys follow the library's rule: while a job with the key is queued or running, its
-- id is returned with inserted = false and nothing is inserted; a finished job frees its key.
-- A job holding the key in another, uncommitted transaction makes this call wait for that
-- transaction; if it commits, its id is returned, if it rolls back, this call inserts.
--
-- Task settings (`[tasks.KIND]` queue, attempts, priority) are not applied here: they live in
-- the processes' task catalog, and `errand_core::TaskCatalog::prepare` is their one home.
-- Bindings that hold a catalog (the Python package's `defer_in`) prepare the job in process
-- and pass every field; a plain SQL caller names the queue it wants. A NULL timeout is
-- stored as NULL, which the worker reads as "the task's timeout", as for the library.
--
-- The functions run with search_path pinned to the schema they were installed in (set at the
-- end of this file), so `schema.errand_enqueue(...)` works whatever the caller's search_path,
-- and the wake-up channel is that schema's.
--
-- errand_enqueue is SECURITY DEFINER: it writes with the rights of the role that migrated
-- (which owns the tables), so a caller needs no right on Errand's tables (an insert with
-- ON CONFLICT ... RETURNING would need SELECT on errand_jobs, and with it every job's args).
-- EXECUTE is revoked from PUBLIC: the migrating role (and superusers) may call it, another
-- role once granted: GRANT EXECUTE ON FUNCTION errand_enqueue TO app_role (and USAGE on the
-- schema if it is not public). The pinned search_path is what makes a definer function safe.

-- Raises the refusal of one field.
CREATE FUNCTION errand_enqueue_refuse(field text, problem text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'invalid_parameter_value',
        MESSAGE = format('invalid job: `%s` %s', field, problem),
        COLUMN = field;
END $$;

-- A character as errand-core's messages show it: printable ASCII quoted, the rest (controls,
-- space, anything not ASCII) as a code point.
CREATE FUNCTION errand_enqueue_describe_char(c text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN ascii(c) BETWEEN 33 AND 126 THEN '`' || c || '`'
        WHEN ascii(c) < 65536 THEN 'U+' || lpad(upper(to_hex(ascii(c))), 4, '0')
        ELSE 'U+' || upper(to_hex(ascii(c)))
    END
$$;

-- errand-core's check_name: 1 to 128 characters, ASCII letters, digits and `_-.:/`, starting
-- with a letter or digit.
CREATE FUNCTION errand_enqueue_check_name(field text, value text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    bad text;
BEGIN
    IF value IS NULL OR value = '' THEN
        PERFORM errand_enqueue_refuse(field, 'must not be empty');
    END IF;
    IF char_length(value) > 128 THEN
        PERFORM errand_enqueue_refuse(field, 'is longer than 128 characters');
    END IF;
    bad := substring(value FROM '[^A-Za-z0-9_.:/-]');
    IF bad IS NOT NULL THEN
        PERFORM errand_enqueue_refuse(field, format(
            'may hold only ASCII letters, digits and `_-.:/`, found %s',
            errand_enqueue_describe_char(bad)));
    END IF;
    IF value !~ '^[A-Za-z0-9]' THEN
        PERFORM errand_enqueue_refuse(field, 'must start with an ASCII letter or digit');
    END IF;
END $$;

-- errand-core's check_key: not empty, at most 512 characters.
CREATE FUNCTION errand_enqueue_check_key(field text, value text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF value = '' THEN
        PERFORM errand_enqueue_refuse(field, 'must not be empty when given');
    END IF;
    IF char_length(value) > 512 THEN
        PERFORM errand_enqueue_refuse(field, 'is longer than 512 characters');
    END IF;
END $$;

-- The nesting depth of a JSON value (0 for a scalar, 1 for `{}`; the walk stops one level
-- past 100, errand-core's MAX_DEPTH) and its size in bytes as compact JSON text, which is how
-- errand-core counts the args limit. jsonb prints `, ` and `: ` between items; compact JSON
-- has no spaces, so the size is summed over the values: a scalar's text (strings are escaped
-- alike by both), 2 for a container's brackets, a key's quoted text and its colon, and a comma
-- between siblings.
CREATE FUNCTION errand_enqueue_json_shape(value jsonb, OUT depth integer, OUT bytes bigint)
LANGUAGE sql IMMUTABLE STRICT AS $$
    WITH RECURSIVE node(v, lvl, extra) AS (
        SELECT value, 1, 0::bigint
        UNION ALL
        SELECT c.v, n.lvl + 1, c.extra
        FROM node n
        CROSS JOIN LATERAL (
            SELECT e.value AS v, octet_length(to_jsonb(e.key)::text) + 2::bigint AS extra
            FROM jsonb_each(CASE WHEN jsonb_typeof(n.v) = 'object' THEN n.v END) e
            UNION ALL
            SELECT e.value, 1::bigint
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(n.v) = 'array' THEN n.v END) e
        ) c
        WHERE n.lvl <= 100
    )
    SELECT coalesce(max(lvl) FILTER (WHERE jsonb_typeof(v) IN ('object', 'array')), 0),
           sum(CASE WHEN jsonb_typeof(v) IN ('object', 'array') THEN 2
                    ELSE octet_length(v::text) END + extra)
           - count(*) FILTER (WHERE (jsonb_typeof(v) = 'object' AND v <> '{}'::jsonb)
                                 OR (jsonb_typeof(v) = 'array' AND v <> '[]'::jsonb))
    FROM node
$$;

CREATE FUNCTION errand_enqueue(
    kind text,
    args jsonb DEFAULT '{}',
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    run_at timestamptz DEFAULT NULL,
    delay interval DEFAULT NULL,
    max_attempts integer DEFAULT 4,
    unique_key text DEFAULT NULL,
    reference_type text DEFAULT NULL,
    reference_id text DEFAULT NULL,
    timeout interval DEFAULT NULL,
    OUT id bigint,
    OUT inserted boolean
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_args jsonb := coalesce(errand_enqueue.args, '{}'::jsonb);
    v_queue text := coalesce(errand_enqueue.queue, 'default');
    v_priority integer := coalesce(errand_enqueue.priority, 0);
    v_max_attempts integer := coalesce(errand_enqueue.max_attempts, 4);
    v_run_at timestamptz;
    v_timeout_ms bigint;
    v_shape record;
    v_id bigint;
BEGIN
    PERFORM errand_enqueue_check_name('kind', errand_enqueue.kind);
    PERFORM errand_enqueue_check_name('queue', v_queue);
    IF jsonb_typeof(v_args) <> 'object' THEN
        PERFORM errand_enqueue_refuse('args', 'must be a JSON object, got ' ||
            CASE jsonb_typeof(v_args)
                WHEN 'null' THEN 'null'
                WHEN 'boolean' THEN 'a boolean'
                WHEN 'number' THEN 'a number'
                WHEN 'string' THEN 'a string'
                ELSE 'an array'
            END);
    END IF;
    -- jsonb's text is never shorter than the compact text, and nesting deeper than 100 levels
    -- takes at least 202 bytes of brackets: small args need no walk.
    IF octet_length(v_args::text) > 201 THEN
        SELECT * INTO v_shape FROM errand_enqueue_json_shape(v_args);
        IF v_shape.depth > 100 THEN
            PERFORM errand_enqueue_refuse('args',
                'nests arrays and objects deeper than 100 levels');
        END IF;
        IF v_shape.bytes > 1048576 THEN
            PERFORM errand_enqueue_refuse('args',
                format('is %s bytes, over the limit of 1048576 bytes', v_shape.bytes));
        END IF;
    END IF;
    IF errand_enqueue.run_at IS NOT NULL AND errand_enqueue.delay IS NOT NULL THEN
        PERFORM errand_enqueue_refuse('delay', 'cannot be combined with run_at');
    END IF;
    IF errand_enqueue.delay < interval '0' THEN
        PERFORM errand_enqueue_refuse('delay',
            format('must not be negative, got %s', errand_enqueue.delay));
    END IF;
    -- errand-core's MAX_DELAY_MS (300 years of 365.25 days), compared in milliseconds: the
    -- epoch of an interval counts a year as 365.25 days, where interval comparison would
    -- count it as 360.
    IF extract(epoch FROM errand_enqueue.delay) * 1000 > 9467280000000 THEN
        PERFORM errand_enqueue_refuse('delay',
            format('must be at most 300 years, got %s', errand_enqueue.delay));
    END IF;
    -- errand-core's RUN_AT_MIN_MICROS and RUN_AT_MAX_MICROS: the years RFC 3339 writes
    -- (PostgreSQL calls the year 0000 1 BC).
    IF errand_enqueue.run_at < timestamptz '0001-01-01 00:00:00+00 BC'
       OR errand_enqueue.run_at > timestamptz '9999-12-31 23:59:59.999999+00' THEN
        PERFORM errand_enqueue_refuse('run_at', 'must be within the years 0000 to 9999');
    END IF;
    v_run_at := coalesce(errand_enqueue.run_at, now() + coalesce(errand_enqueue.delay, interval '0'));
    IF v_max_attempts < 1 THEN
        PERFORM errand_enqueue_refuse('max_attempts',
            format('must be at least 1, got %s', v_max_attempts));
    END IF;
    IF errand_enqueue.unique_key IS NOT NULL THEN
        PERFORM errand_enqueue_check_key('unique_key', errand_enqueue.unique_key);
    END IF;
    IF errand_enqueue.reference_type IS NOT NULL AND errand_enqueue.reference_id IS NULL THEN
        PERFORM errand_enqueue_refuse('reference_id', 'is required when reference_type is given');
    END IF;
    IF errand_enqueue.reference_type IS NULL AND errand_enqueue.reference_id IS NOT NULL THEN
        PERFORM errand_enqueue_refuse('reference_type', 'is required when reference_id is given');
    END IF;
    IF errand_enqueue.reference_type IS NOT NULL THEN
        PERFORM errand_enqueue_check_name('reference_type', errand_enqueue.reference_type);
        PERFORM errand_enqueue_check_key('reference_id', errand_enqueue.reference_id);
    END IF;
    IF errand_enqueue.timeout < interval '0' THEN
        PERFORM errand_enqueue_refuse('timeout',
            format('must not be negative, got %s', errand_enqueue.timeout));
    END IF;
    -- Rounded up to whole milliseconds, so a positive timeout never becomes 0 (no limit).
    v_timeout_ms := ceil(extract(epoch FROM errand_enqueue.timeout) * 1000)::bigint;

    -- As the library's insert: ON CONFLICT DO NOTHING against the live-key index, then the
    -- live job holding the key, read with a fresh snapshot (each statement of a READ COMMITTED
    -- transaction takes one), so a job committed by another transaction meanwhile is found;
    -- if that job finished in between, its key is free again: insert once more.
    FOR i IN 1..8 LOOP
        INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at, attempt,
                                 max_attempts, unique_key, reference_type, reference_id,
                                 timeout_ms, created_at, updated_at)
        VALUES (v_queue, errand_enqueue.kind, v_args, 'queued', v_priority, v_run_at, 0,
                v_max_attempts, errand_enqueue.unique_key, errand_enqueue.reference_type,
                errand_enqueue.reference_id, v_timeout_ms, now(), now())
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND status IN ('queued', 'running')
        DO NOTHING
        RETURNING errand_jobs.id INTO v_id;
        IF v_id IS NOT NULL THEN
            IF v_run_at <= now() THEN
                -- The library's hint: delivered when the caller commits, never on rollback.
                PERFORM pg_notify(left('errand_ready_' || current_schema(), 63), v_queue);
            END IF;
            id := v_id;
            inserted := true;
            RETURN;
        END IF;
        SELECT j.id INTO v_id FROM errand_jobs j
        WHERE j.unique_key = errand_enqueue.unique_key AND j.status IN ('queued', 'running')
        LIMIT 1;
        IF v_id IS NOT NULL THEN
            id := v_id;
            inserted := false;
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'could not enqueue: unique keys kept changing hands for 8 rounds';
END $$;

COMMENT ON FUNCTION errand_enqueue(text, jsonb, text, integer, timestamptz, interval, integer,
                                   text, text, text, interval) IS
    'Enqueues an Errand job in the caller''s transaction; returns (id, inserted). '
    'inserted = false: a queued or running job already holds unique_key, and id is its id.';

-- Pin every function's search_path to the schema it lives in (see the header).
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'errand_enqueue_refuse(text, text)',
        'errand_enqueue_describe_char(text)',
        'errand_enqueue_check_name(text, text)',
        'errand_enqueue_check_key(text, text)',
        'errand_enqueue_json_shape(jsonb)',
        'errand_enqueue(text, jsonb, text, integer, timestamptz, interval, integer, text, text, text, interval)'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
END $$;

ALTER FUNCTION errand_enqueue(text, jsonb, text, integer, timestamptz, interval, integer, text,
                              text, text, interval) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION errand_enqueue(text, jsonb, text, integer, timestamptz, interval,
                                          integer, text, text, text, interval) FROM PUBLIC;
