-- Errand schema v10 (SQLite): enqueue from the application's own connection, inside its own
-- transaction (Python's sqlite3, SQLAlchemy, any language's SQLite driver):
--
--   BEGIN IMMEDIATE;
--   UPDATE uploads SET state = 'received' WHERE id = 42;
--   INSERT INTO errand_enqueue (kind, args, queue) VALUES ('scan', '{"upload": 42}', 'ingest');
--   SELECT id, inserted FROM errand_enqueue_result;   -- in the same transaction
--   COMMIT;
--
-- The store's writer is one connection of the Errand process, but SQLite lets any connection
-- write the file in turn: a write transaction takes the file's write lock, and the store's
-- writer waits for it (busy_timeout, 5 s) as it waits for another Errand process. So the
-- application's transaction is one more writer. Keep it short: Errand's claims and
-- completions on that file wait while it holds the lock.
--
-- `errand_enqueue` is a view with an INSTEAD OF INSERT trigger. Its columns, NULL meaning "not
-- given": kind, args (JSON text, default '{}'), queue ('default'), priority (0), run_at
-- (integer microseconds since the Unix epoch, UTC, like every time the store keeps), delay_ms,
-- max_attempts (4), unique_key, reference_type, reference_id, timeout_ms. The outcome of the
-- last insert is the one row of `errand_enqueue_result` (id, inserted: 1, or 0 when a queued
-- or running job holds unique_key and id is that job's); read it in the same transaction,
-- since the next writer's insert replaces it.
--
-- The checks are errand-core's (`NewJob::validate`), in its order, naming the same fields.
-- SQLite's RAISE takes a constant message, so a message says what is wrong without the value
-- (`invalid job: `max_attempts` must be at least 1`). Triggers cannot hold a WITH clause, so
-- the nesting depth is counted by a view (`errand_enqueue_depth`) over the JSON's nodes copied
-- to `errand_enqueue_nodes` (done only for args longer than 201 bytes: fewer cannot nest 101
-- levels). The args size is that of the minified text as given (`json()` keeps a string's
-- escapes as written, where errand-core counts its own encoding). A refusal aborts the insert
-- statement only; the application's transaction stays open.
--
-- Not here: task settings ([tasks.KIND] lives in the processes; see docs/design.md, Enqueue
-- from SQL) and a wake-up hint (SQLite's hints are in-process; workers on this file find the
-- job at their next poll, every second by default).
--
-- Everything here is read by whichever SQLite library opens the file, so it uses nothing
-- newer than SQLite 3.38 (Debian 12's Python has 3.40): "now" comes from julianday().

CREATE VIEW errand_enqueue (kind, args, queue, priority, run_at, delay_ms, max_attempts,
                            unique_key, reference_type, reference_id, timeout_ms) AS
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;

CREATE TABLE errand_enqueue_result (
    slot     INTEGER PRIMARY KEY CHECK (slot = 1),
    id       INTEGER NOT NULL,
    inserted INTEGER NOT NULL
);

-- Scratch rows of one insert's args (json_tree's id and parent), empty between inserts.
CREATE TABLE errand_enqueue_nodes (
    id        INTEGER PRIMARY KEY,
    parent    INTEGER,
    container INTEGER NOT NULL
);
CREATE INDEX errand_enqueue_nodes_parent ON errand_enqueue_nodes (parent);

-- The nesting depth of the copied args: 1 for `{}`, counting containers only; the walk stops
-- one level past 100, errand-core's MAX_DEPTH.
CREATE VIEW errand_enqueue_depth (depth) AS
    WITH RECURSIVE d (id, depth) AS (
        SELECT id, 1 FROM errand_enqueue_nodes WHERE parent IS NULL AND container
        UNION ALL
        SELECT n.id, d.depth + 1 FROM errand_enqueue_nodes n JOIN d ON n.parent = d.id
        WHERE n.container AND d.depth <= 100
    )
    SELECT coalesce(max(depth), 0) FROM d;

CREATE TRIGGER errand_enqueue_insert INSTEAD OF INSERT ON errand_enqueue
BEGIN
    -- kind (errand-core's check_name: 1 to 128 characters, ASCII letters, digits and
    -- `_-.:/`, starting with a letter or digit; a NUL is a character that is not allowed)
    -- errand_jobs is not STRICT: a blob or a number in a text column would be stored as
    -- given and then be unreadable as text, so each text column's type is checked first.
    SELECT RAISE(ABORT, 'invalid job: `kind` must be text')
        WHERE NEW.kind IS NOT NULL AND typeof(NEW.kind) <> 'text';
    SELECT RAISE(ABORT, 'invalid job: `kind` must not be empty')
        WHERE NEW.kind IS NULL OR NEW.kind = '';
    SELECT RAISE(ABORT, 'invalid job: `kind` is longer than 128 characters')
        WHERE length(NEW.kind) > 128;
    SELECT RAISE(ABORT, 'invalid job: `kind` may hold only ASCII letters, digits and `_-.:/`')
        WHERE NEW.kind GLOB '*[^A-Za-z0-9_.:/-]*' OR instr(CAST(NEW.kind AS BLOB), x'00') > 0;
    SELECT RAISE(ABORT, 'invalid job: `kind` must start with an ASCII letter or digit')
        WHERE NOT NEW.kind GLOB '[A-Za-z0-9]*';

    -- queue
    SELECT RAISE(ABORT, 'invalid job: `queue` must be text')
        WHERE typeof(NEW.queue) NOT IN ('text', 'null');
    SELECT RAISE(ABORT, 'invalid job: `queue` must not be empty')
        WHERE NEW.queue = '';
    SELECT RAISE(ABORT, 'invalid job: `queue` is longer than 128 characters')
        WHERE length(NEW.queue) > 128;
    SELECT RAISE(ABORT, 'invalid job: `queue` may hold only ASCII letters, digits and `_-.:/`')
        WHERE NEW.queue GLOB '*[^A-Za-z0-9_.:/-]*' OR instr(CAST(NEW.queue AS BLOB), x'00') > 0;
    SELECT RAISE(ABORT, 'invalid job: `queue` must start with an ASCII letter or digit')
        WHERE NOT NEW.queue GLOB '[A-Za-z0-9]*';

    -- args: a JSON object, not nested deeper than 100 levels, no NUL, at most 1 MiB
    SELECT RAISE(ABORT, 'invalid job: `args` must be JSON text')
        WHERE NEW.args IS NOT NULL AND (typeof(NEW.args) <> 'text' OR NOT json_valid(NEW.args));
    SELECT RAISE(ABORT, 'invalid job: `args` must be a JSON object')
        WHERE json_type(coalesce(NEW.args, '{}')) <> 'object';
    DELETE FROM errand_enqueue_nodes;
    INSERT INTO errand_enqueue_nodes (id, parent, container)
        SELECT id, parent, type IN ('object', 'array') FROM json_tree(NEW.args)
        WHERE length(CAST(NEW.args AS BLOB)) > 201;
    SELECT RAISE(ABORT, 'invalid job: `args` nests arrays and objects deeper than 100 levels')
        WHERE (SELECT depth FROM errand_enqueue_depth) > 100;
    DELETE FROM errand_enqueue_nodes;
    -- A NUL is written `\u0000` in JSON text; `\\u0000` is a backslash and "u0000", so escaped
    -- backslashes are taken out first.
    SELECT RAISE(ABORT, 'invalid job: `args` must not contain the NUL character (U+0000), which PostgreSQL cannot store')
        WHERE instr(replace(NEW.args, '\\', ''), '\u0000') > 0;
    SELECT RAISE(ABORT, 'invalid job: `args` is over the limit of 1048576 bytes')
        WHERE length(CAST(json(coalesce(NEW.args, '{}')) AS BLOB)) > 1048576;

    -- the earliest start
    SELECT RAISE(ABORT, 'invalid job: `run_at` must be an integer (microseconds since the Unix epoch)')
        WHERE typeof(NEW.run_at) NOT IN ('integer', 'null');
    SELECT RAISE(ABORT, 'invalid job: `delay_ms` must be an integer')
        WHERE typeof(NEW.delay_ms) NOT IN ('integer', 'null');
    SELECT RAISE(ABORT, 'invalid job: `delay_ms` cannot be combined with run_at')
        WHERE NEW.run_at IS NOT NULL AND NEW.delay_ms IS NOT NULL;
    SELECT RAISE(ABORT, 'invalid job: `run_at` must be within the years 0000 to 9999')
        WHERE NEW.run_at NOT BETWEEN -62167219200000000 AND 253402300799999999;
    SELECT RAISE(ABORT, 'invalid job: `delay_ms` must not be negative')
        WHERE NEW.delay_ms < 0;
    -- errand-core's MAX_DELAY_MS (300 years of 365.25 days); it also keeps the sum below in
    -- range of an integer.
    SELECT RAISE(ABORT, 'invalid job: `delay_ms` must be at most 300 years')
        WHERE NEW.delay_ms > 9467280000000;

    SELECT RAISE(ABORT, 'invalid job: `priority` must be an integer')
        WHERE typeof(NEW.priority) NOT IN ('integer', 'null')
           OR NEW.priority NOT BETWEEN -2147483648 AND 2147483647;
    SELECT RAISE(ABORT, 'invalid job: `max_attempts` must be an integer')
        WHERE typeof(NEW.max_attempts) NOT IN ('integer', 'null')
           OR NEW.max_attempts > 2147483647;
    SELECT RAISE(ABORT, 'invalid job: `max_attempts` must be at least 1')
        WHERE NEW.max_attempts < 1;

    -- unique_key (errand-core's check_key: not empty, at most 512 characters, no NUL)
    SELECT RAISE(ABORT, 'invalid job: `unique_key` must be text')
        WHERE typeof(NEW.unique_key) NOT IN ('text', 'null');
    SELECT RAISE(ABORT, 'invalid job: `unique_key` must not be empty when given')
        WHERE NEW.unique_key = '';
    SELECT RAISE(ABORT, 'invalid job: `unique_key` is longer than 512 characters')
        WHERE length(NEW.unique_key) > 512;
    SELECT RAISE(ABORT, 'invalid job: `unique_key` must not contain the NUL character (U+0000), which PostgreSQL cannot store')
        WHERE instr(CAST(NEW.unique_key AS BLOB), x'00') > 0;

    -- reference: text, both or neither
    SELECT RAISE(ABORT, 'invalid job: `reference_type` must be text')
        WHERE typeof(NEW.reference_type) NOT IN ('text', 'null');
    SELECT RAISE(ABORT, 'invalid job: `reference_id` must be text')
        WHERE typeof(NEW.reference_id) NOT IN ('text', 'null');
    SELECT RAISE(ABORT, 'invalid job: `reference_id` is required when reference_type is given')
        WHERE NEW.reference_type IS NOT NULL AND NEW.reference_id IS NULL;
    SELECT RAISE(ABORT, 'invalid job: `reference_type` is required when reference_id is given')
        WHERE NEW.reference_type IS NULL AND NEW.reference_id IS NOT NULL;
    SELECT RAISE(ABORT, 'invalid job: `reference_type` must not be empty')
        WHERE NEW.reference_type = '';
    SELECT RAISE(ABORT, 'invalid job: `reference_type` is longer than 128 characters')
        WHERE length(NEW.reference_type) > 128;
    SELECT RAISE(ABORT, 'invalid job: `reference_type` may hold only ASCII letters, digits and `_-.:/`')
        WHERE NEW.reference_type GLOB '*[^A-Za-z0-9_.:/-]*'
           OR instr(CAST(NEW.reference_type AS BLOB), x'00') > 0;
    SELECT RAISE(ABORT, 'invalid job: `reference_type` must start with an ASCII letter or digit')
        WHERE NOT NEW.reference_type GLOB '[A-Za-z0-9]*';
    SELECT RAISE(ABORT, 'invalid job: `reference_id` must not be empty when given')
        WHERE NEW.reference_id = '';
    SELECT RAISE(ABORT, 'invalid job: `reference_id` is longer than 512 characters')
        WHERE length(NEW.reference_id) > 512;
    SELECT RAISE(ABORT, 'invalid job: `reference_id` must not contain the NUL character (U+0000), which PostgreSQL cannot store')
        WHERE instr(CAST(NEW.reference_id AS BLOB), x'00') > 0;

    SELECT RAISE(ABORT, 'invalid job: `timeout_ms` must be an integer')
        WHERE typeof(NEW.timeout_ms) NOT IN ('integer', 'null');
    SELECT RAISE(ABORT, 'invalid job: `timeout_ms` must not be negative')
        WHERE NEW.timeout_ms < 0;

    -- The unique-key rule: this connection holds the write lock, so the live job found here
    -- is still live when the insert runs.
    DELETE FROM errand_enqueue_result;
    INSERT INTO errand_enqueue_result (slot, id, inserted)
        SELECT 1, id, 0 FROM errand_jobs
        WHERE NEW.unique_key IS NOT NULL AND unique_key = NEW.unique_key
          AND status IN ('queued', 'running');
    INSERT INTO errand_jobs (queue, kind, args, status, priority, run_at, attempt, max_attempts,
                             unique_key, reference_type, reference_id, timeout_ms, created_at,
                             updated_at)
        SELECT coalesce(NEW.queue, 'default'), NEW.kind, json(coalesce(NEW.args, '{}')),
               'queued', coalesce(NEW.priority, 0),
               coalesce(NEW.run_at, now.us + coalesce(NEW.delay_ms, 0) * 1000),
               0, coalesce(NEW.max_attempts, 4), NEW.unique_key, NEW.reference_type,
               NEW.reference_id, NEW.timeout_ms, now.us, now.us
        FROM (SELECT CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000
                     AS us) now
        WHERE NOT EXISTS (SELECT 1 FROM errand_enqueue_result);
    INSERT INTO errand_enqueue_result (slot, id, inserted)
        SELECT 1, last_insert_rowid(), 1
        WHERE NOT EXISTS (SELECT 1 FROM errand_enqueue_result);
END;
